"""gunicorn settings for every environment (the image, `nox -s serve`, tests and benchmarks).

Read from the environment: PORT (8080 in the image, 3000 locally), BIND_HOST, WEB_CONCURRENCY, GUNICORN_THREADS,
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE.  Settings are validated here, before any
worker starts, so a config error stops start-up with one line that names the variable."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend"))

from mv_os.settings import load_or_exit


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        print(f"mv-os: config error: {name} must be a positive whole number", file=sys.stderr)
        raise SystemExit(2)
    return int(raw)


workers = _int("WEB_CONCURRENCY", 2)
# 8 threads: concurrent webhooks of a worker share one commit (group commit), so more requests in flight per
# worker mean fewer fsyncs per request (docs/performance.md has the measurements).
threads = _int("GUNICORN_THREADS", 8)
# Each thread may hold a pooled connection, plus the webhook processor's; the webhook intake has its own.
os.environ.setdefault("DB_MAX_CONNECTIONS", str(threads + 2))
load_or_exit()

bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{_int('PORT', 8080)}"  # noqa: S104 - App Runner needs it
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# App Runner's load balancer talks to us directly; trust its X-Forwarded-* only from there.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the app logs each request (JSON in staging/production) with its request id (mv_os/access.py)
errorlog = "-"
logger_class = "mv_os.gunicorn_logging.Logger"  # JSON lines in staging/production, redacted everywhere
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
preload_app = False  # each worker builds its own pool after fork


def post_fork(server, worker):
    """Nothing is shared across fork: each worker's pool starts empty."""
    from mv_os import db

    if db.database.obj is not None:
        db.database.obj.close_all()


def post_worker_init(worker):
    """Start this worker's webhook processor (it also drains any backlog, e.g. left by a crash)."""
    app = worker.wsgi
    processor = getattr(app, "extensions", {}).get("webhook_processor")
    if processor is not None:
        processor.ensure_started(app.config["SETTINGS"].whatsapp_phone_number_id)


def worker_exit(server, worker):
    """Let the processor finish its batch (bounded); anything unfinished stays queued for the next one."""
    processor = getattr(worker.wsgi, "extensions", {}).get("webhook_processor")
    if processor is not None:
        processor.stop(timeout=5.0)
        from mv_os.webhooks import intake

        if (line := intake.summary()) is not None:
            worker.log.info("webhook intake of worker %s: %s", worker.pid, line)
