"""gunicorn settings for every environment (the image, `nox -s serve`, tests and benchmarks).

Read from the environment: PORT (8080 in the image, 3000 locally), BIND_HOST, WEB_CONCURRENCY,
GUNICORN_WORKER_CLASS (gevent, or gthread), GUNICORN_WORKER_CONNECTIONS (gevent), GUNICORN_THREADS (gthread),
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE, GUNICORN_CONTROL_SOCKET (off unless set).
Settings are validated here, before any worker starts, so a config error stops start-up with one line that
names the variable.

The worker model is gevent (docs/decisions/0019-gevent-workers.md): a request waiting for its commit, or for
Meta, is a greenlet waiting on a socket, not a thread holding the GIL, so the group commit fills up and a
hanging Meta ties up nothing.  gthread stays available (GUNICORN_WORKER_CLASS=gthread) as the fallback."""

import os
import sys

WORKER_CLASSES = ("gevent", "gthread")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "gevent"
if worker_class not in WORKER_CLASSES:
    print(f"mv-os: config error: GUNICORN_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}", file=sys.stderr)
    raise SystemExit(2)
if worker_class == "gevent":
    # Patch before anything else is imported.  The gevent worker patches only after the fork, but this file
    # (and gunicorn's logger class) import mv_os -- peewee, psycopg, requests -- here, in the master: peewee's
    # per-thread connection state would then be one state shared by every greenlet of a worker, and psycopg
    # would pick its blocking C wait.  Patched first, every module sees greenlet-aware threading and sockets.
    from gevent import monkey

    monkey.patch_all()

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend"))

from mv_os.settings import load_or_exit  # noqa: E402 - after the patching above


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        print(f"mv-os: config error: {name} must be a positive whole number", file=sys.stderr)
        raise SystemExit(2)
    return int(raw)


workers = _int("WEB_CONCURRENCY", 2)
# gthread: 8 threads; concurrent webhooks of a worker share one commit (group commit), so more requests in
# flight per worker mean fewer fsyncs per request (docs/journal/performance-2026.md has the measurements).
threads = _int("GUNICORN_THREADS", 8)
# gevent: requests in flight per worker (App Runner's default is 100 per instance).
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 100)
# Pooled connections per worker (API requests and the webhook processor; the webhook intake has its own).  With
# gthread each thread may hold one; with gevent a request waits (db.py: up to 10 s) for a free one.
os.environ.setdefault("DB_MAX_CONNECTIONS", str(threads + 2 if worker_class == "gthread" else 10))
load_or_exit()

bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{_int('PORT', 8080)}"  # noqa: S104 - App Runner needs it
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# App Runner's load balancer talks to us directly; trust its X-Forwarded-* only from there.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (for `gunicornc`) defaults to one path in the user's home, shared by every clone and
# test server on the machine: off unless GUNICORN_CONTROL_SOCKET names a path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
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


def pre_request(worker, req):
    """gevent: let the other connections run before each request.  A keep-alive connection whose next request
    is already buffered would otherwise be served again and again without a switch (its read never blocks),
    starving the worker's other connections: App Runner's proxy keeps its connections alive."""
    if worker_class == "gevent":
        import gevent

        gevent.sleep(0)


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
