"""`nox -s dev` / `nox -s serve`: start MV-OS locally on a real PostgreSQL with zero set-up.

Loads env/backend.env.local (or the committed .example) as defaults under the process environment, finds a
database (DATABASE_URL, else the embedded server), migrates, seeds the demo user, prints the URL and the demo
login, then serves on http://127.0.0.1:3000 -- with Flask's reloading dev server (`dev`) or gunicorn with the
production-like config (`serve`)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from dotenv import dotenv_values

from mv_os.localdb import REPO_ROOT, LocalDatabaseUnavailable, local_database_url

ENV_DIR = REPO_ROOT / "env"


def local_env_defaults() -> dict[str, str]:
    """Backend and frontend values from env/<side>.env.local if present, else from the committed template."""
    values: dict[str, str] = {}
    for side in ("backend", "frontend"):
        for name in (f"{side}.env.local", f"{side}.env.local.example"):
            path = ENV_DIR / name
            if path.exists():
                values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
                break
    return values


def prepare_environment() -> None:
    explicit_url = os.environ.get("DATABASE_URL")
    for key, value in local_env_defaults().items():
        os.environ.setdefault(key, value)
    if explicit_url is None:
        # The template's DATABASE_URL is docker compose's; it is used only when exported in the shell.
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("NODE_ENV", "local")
    if os.environ["NODE_ENV"] != "local":
        sys.exit("mv-os: nox -s dev/serve run NODE_ENV=local only; staging and production run on App Runner")
    if not os.environ.get("DATABASE_URL"):
        try:
            os.environ["DATABASE_URL"] = local_database_url()
        except LocalDatabaseUnavailable as err:
            sys.exit(f"mv-os: {err}")


def migrate_and_seed() -> tuple[str, str]:
    from mv_os import create_app, db
    from mv_os.cli import seed_demo

    app = create_app()
    with app.app_context():
        db.migrate()
        return seed_demo()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mv_os.devserver", description=__doc__)
    parser.add_argument("--gunicorn", action="store_true", help="serve with gunicorn (production-like)")
    parser.add_argument("--no-reload", action="store_true", help="dev server without the code reloader")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if os.environ.get("WERKZEUG_RUN_MAIN") != "true":  # the reloader's child inherits a prepared environment
        prepare_environment()
        email, password = migrate_and_seed()
        port = os.environ.get("PORT", "3000")
        os.environ["PORT"] = port
        print(
            f"\n  MV-OS (NODE_ENV=local, mock providers) ready in {time.perf_counter() - started:.1f}s\n"
            f"  URL:        http://127.0.0.1:{port}\n"
            f"  demo login: {email} / {password}\n",
            file=sys.stderr,
            flush=True,
        )
    port = int(os.environ.get("PORT", "3000"))
    if args.gunicorn:
        return _run_gunicorn(port)
    from mv_os import create_app

    app = create_app()
    if args.no_reload or os.environ.get("WERKZEUG_RUN_MAIN") == "true":  # the process that serves
        # The webhook processor starts now, not at the first webhook: a backlog left by the last session is
        # processed at once (gunicorn's workers do the same in gunicorn.conf.py's post_worker_init).
        app.extensions["webhook_processor"].ensure_started(app.config["SETTINGS"].whatsapp_phone_number_id)
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=not args.no_reload)
    return 0


def _run_gunicorn(port: int) -> int:
    env = {**os.environ, "PORT": str(port), "BIND_HOST": "127.0.0.1"}
    conf = REPO_ROOT / "gunicorn.conf.py"
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf), "mv_os:create_app()"], env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        return proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
