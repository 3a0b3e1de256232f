"""flask commands: `flask --app mv_os migrate | create-user | seed-demo`."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from peewee import IntegrityError

from mv_os import db
from mv_os.auth import hash_password, normalize_email
from mv_os.models import User
from mv_os.settings import Environment


def register_cli(app: Flask) -> None:
    @app.cli.command("migrate")
    @click.option("--check", is_flag=True, help="Only list pending migrations; exit 1 if any.")
    @click.option("--lock-timeout", default=120.0, show_default=True, help="Seconds to wait for the lock.")
    def migrate_command(check: bool, lock_timeout: float):
        """Apply pending schema migrations (guarded by a PostgreSQL advisory lock)."""
        if check:
            with db.database.connection_context():
                pending = db.pending_migrations()
            for name in pending:
                click.echo(f"pending {name}")
            raise SystemExit(1 if pending else 0)
        applied = db.migrate(lock_timeout=lock_timeout)
        click.echo(f"migrations applied: {len(applied)}" + (f" ({', '.join(applied)})" if applied else ""))

    @app.cli.command("create-user")
    @click.option("--email", required=True)
    @click.option("--name", "display_name", default="")
    @click.password_option(envvar="MV_OS_NEW_USER_PASSWORD")
    def create_user_command(email: str, display_name: str, password: str):
        """Create a user who can log in (the password is prompted, or read from MV_OS_NEW_USER_PASSWORD)."""
        if len(password) < 8:
            raise click.ClickException("the password must be at least 8 characters")
        try:
            with db.database.connection_context():
                user = create_user(email, password, display_name)
        except IntegrityError:
            raise click.ClickException(f"a user with email {normalize_email(email)} already exists") from None
        click.echo(f"created user {user.id} <{user.email}>")

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Create the local demo user from DEMO_EMAIL / DEMO_PASSWORD (local only)."""
        email, password = seed_demo()
        click.echo(f"demo login: {email} / {password}")


def create_user(email: str, password: str, display_name: str = "") -> User:
    return User.create(email=normalize_email(email), password_hash=hash_password(password), display_name=display_name)


def seed_demo() -> tuple[str, str]:
    """Idempotently create (or reset) the demo user.  Refuses outside local."""
    settings = current_app.config["SETTINGS"]
    if settings.environment is not Environment.LOCAL:
        raise click.ClickException(
            f"seed-demo only runs in local (NODE_ENV={settings.environment.value}); use create-user instead"
        )
    email = normalize_email(os.environ.get("DEMO_EMAIL") or "demo@mv-os.local")
    password = os.environ.get("DEMO_PASSWORD") or "demo-password"
    with db.database.connection_context():
        user = User.get_or_none(User.email == email)
        if user is None:
            create_user(email, password, "Demo operator")
        else:
            user.password_hash = hash_password(password)
            user.save()
    return email, password
