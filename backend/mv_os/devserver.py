"""`nox -s dev` / `nox -s serve`: start MV-OS locally on a real PostgreSQL with zero set-up.

Loads env/backend.env.local (or the committed .example) as defaults under the process environment, finds a
database (DATABASE_URL, else the embedded server), migrates, seeds the demo user, prints the URL and the demo
login, then serves on http://127.0.0.1:$PORT (3000 unless set) -- with Flask's reloading dev server (`dev`) or
gunicorn with the production-like config (`serve`).  Locally PUBLIC_BASE_URL follows PORT unless set, so the
mock provider's status webhooks reach this server."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from dotenv import dotenv_values

from mv_os.localdb import REPO_ROOT, LocalDatabaseUnavailable, local_database_url

ENV_DIR = REPO_ROOT / "env"


# Template values that follow the running server rather than the file: PUBLIC_BASE_URL follows PORT.
FOLLOWS_PORT = ("PUBLIC_BASE_URL",)


def local_env_defaults() -> dict[str, str]:
    """Backend and frontend values from env/<side>.env.local if present, else from the committed template."""
    values: dict[str, str] = {}
    for side in ("backend", "frontend"):
        for name in (f"{side}.env.local", f"{side}.env.local.example"):
            path = ENV_DIR / name
            if path.exists():
                loaded = {k: v for k, v in dotenv_values(path).items() if v is not None}
                if name.endswith(".example"):
                    loaded = {k: v for k, v in loaded.items() if k not in FOLLOWS_PORT}
                values.update(loaded)
                break
    return values


def prepare_environment() -> None:
    """The shell's variables win, then env/*.env.local, then the templates; then find the database."""
    explicit_url = os.environ.get("DATABASE_URL")
    for key, value in local_env_defaults().items():
        os.environ.setdefault(key, value)
    if explicit_url is None:
        # The template's DATABASE_URL is docker compose's; it is used only when exported in the shell.
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("NODE_ENV", "local")
    if os.environ["NODE_ENV"] != "local":
        sys.exit("mv-os: nox -s dev/serve/manage run NODE_ENV=local only; staging and production run on App Runner")
    os.environ.setdefault("PORT", "3000")
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{os.environ['PORT']}")
    if not os.environ.get("DATABASE_URL"):
        try:
            os.environ["DATABASE_URL"] = local_database_url()
        except LocalDatabaseUnavailable as err:
            sys.exit(f"mv-os: {err}")


def unreachable(url: str) -> str:
    """One line for a database that does not answer: where we tried, and the two ways out."""
    from mv_os.dburl import connect_params

    params = connect_params(url)
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
    return (
        f"mv-os: cannot reach PostgreSQL at {where} (DATABASE_URL). Start it with `docker compose up -d`, "
        "or unset DATABASE_URL to use the embedded server."
    )


@contextlib.contextmanager
def database_or_exit() -> Iterator[None]:
    """Turn a connection failure into the one-line message and exit status 1, instead of a traceback."""
    import peewee
    import psycopg

    try:
        yield
    except (psycopg.OperationalError, peewee.OperationalError, peewee.InterfaceError):
        sys.exit(unreachable(os.environ["DATABASE_URL"]))


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
        with database_or_exit():
            email, password = migrate_and_seed()
        port = os.environ["PORT"]
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
