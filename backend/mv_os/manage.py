"""`nox -s manage -- COMMAND`: the operator commands on the database `nox -s dev` uses.

The commands are the app's flask commands (`migrate`, `create-user`, `seed-demo`, `webhooks status|process|
retry-failed`); this entry point prepares the environment exactly as `nox -s dev` does (the local templates,
DATABASE_URL or the embedded server) and applies pending migrations first, so `python -m mv_os.manage webhooks
status` needs nothing set by hand."""

from __future__ import annotations

import sys

from flask.cli import FlaskGroup

from mv_os.devserver import database_or_exit, prepare_environment

PROG = "nox -s manage --"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(f"Usage: {PROG} migrate [--check] | create-user --email ADDRESS | seed-demo | webhooks status|process")
    prepare_environment()
    from mv_os import create_app, db

    cli = FlaskGroup(name=PROG, create_app=create_app, add_default_commands=False, load_dotenv=False)
    with database_or_exit():
        if args and args[0] not in ("migrate", "-h", "--help"):
            # As `nox -s dev` does: a local database is always at the code's schema before a command reads it.
            with create_app().app_context():
                db.migrate()
        cli.main(args=args, prog_name=PROG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
