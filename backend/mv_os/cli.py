"""flask commands: `flask --app mv_os migrate | create-user | seed-demo | webhooks status|process|retry-failed`."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from peewee import IntegrityError
from werkzeug.security import check_password_hash

from mv_os import db
from mv_os.auth import hash_password, normalize_email, set_password
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
        smoke = sync_smoke_user(current_app.config["SETTINGS"])
        if smoke:
            click.echo(f"smoke user: {smoke}")

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

    webhooks = AppGroup("webhooks", help="The webhook queue: archived payloads and their processing.")
    app.cli.add_command(webhooks)

    @webhooks.command("status")
    def webhooks_status_command():
        """Queued payloads, the age of the oldest, and payloads that could not be processed."""
        from mv_os.webhooks import processor

        status = processor.queue_status()
        click.echo(
            f"queued: {status['queued']}"
            + (f" (oldest {status['oldest_queued_s']:.1f}s)" if status["queued"] else "")
            + f"; failed: {status['failed']}"
        )
        for payload_id, error in status["failed_examples"]:
            click.echo(f"  payload {payload_id}: {error}")

    @webhooks.command("process")
    @click.option("--timeout", default=300.0, show_default=True, help="Seconds before giving up.")
    def webhooks_process_command(timeout: float):
        """Process every queued payload now (the servers' processors do this on their own)."""
        from mv_os.webhooks import processor

        before = processor.pending()
        processor.drain(current_app.config["SETTINGS"].whatsapp_phone_number_id, timeout=timeout)
        click.echo(f"processed {before} queued payloads; queue empty")

    @webhooks.command("retry-failed")
    def webhooks_retry_failed_command():
        """Queue the payloads that could not be processed again (after the fix is deployed)."""
        from mv_os.webhooks import processor

        click.echo(f"queued again: {processor.requeue_failed()}")


def create_user(email: str, password: str, display_name: str = "") -> User:
    return User.create(email=normalize_email(email), password_hash=hash_password(password), display_name=display_name)


def sync_smoke_user(settings) -> str | None:
    """The user staging's smoke test logs in as (SMOKE_USER_EMAIL, SMOKE_USER_PASSWORD from Secrets Manager):
    created on the first start, given the current password after a rotation.  Runs at every container start, so
    the secret is the only place the password is kept."""
    if not settings.smoke_user_password:
        return None
    email, password = normalize_email(settings.smoke_user_email), settings.smoke_user_password
    with db.database.connection_context():
        user = User.get_or_none(User.email == email)
        if user is None:
            try:
                create_user(email, password, "Release smoke test")
            except IntegrityError:  # another instance starting at the same moment created it
                return f"{email} (created by another instance)"
            return f"{email} created"
        if check_password_hash(user.password_hash, password):
            return f"{email} up to date"
        set_password(user, password)
        return f"{email} given the rotated password"


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
            set_password(user, password)
    return email, password
