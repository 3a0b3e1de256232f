"""One database for the process: a `DatabaseProxy` bound in `create_app`, pooled psycopg 3 connections,
and the migration runner (DATABASE_URL parsing: `dburl`)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

from peewee import DatabaseProxy
from playhouse.migrations import Runner
from playhouse.pool import PooledPostgresqlDatabase

from mv_os.dburl import connect_params

log = logging.getLogger("mv_os.db")

database = DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_TABLE = "schema_migration"
# pg_advisory_lock key shared by every instance that migrates this database ("mv-os" as an int).
MIGRATION_LOCK_KEY = 0x6D762D6F73


def make_database(url: str, max_connections: int = 8) -> PooledPostgresqlDatabase:
    params = connect_params(url)
    dbname = params.pop("dbname", None) or "postgres"
    params.setdefault("connect_timeout", 5)
    return PooledPostgresqlDatabase(
        dbname,
        max_connections=max_connections,
        stale_timeout=300,
        timeout=10,  # seconds to wait for a free pooled connection before failing
        **params,
    )


def bind(url: str, max_connections: int = 8) -> PooledPostgresqlDatabase:
    """Point the process-wide proxy at a new pooled database (closing the previous pool)."""
    previous = database.obj
    if previous is not None:
        previous.close_all()
    db = make_database(url, max_connections)
    database.initialize(db)
    return db


def migration_runner() -> Runner:
    return Runner(database.obj, directory=str(MIGRATIONS_DIR), table_name=MIGRATION_TABLE)


def pending_migrations() -> list[str]:
    return [m.name for m in migration_runner().status() if m.path is not None and not m.applied]


@contextmanager
def advisory_lock(key: int = MIGRATION_LOCK_KEY, timeout: float = 120.0, poll: float = 0.2):
    """Hold a session-level PostgreSQL advisory lock on this thread's connection; wait at most `timeout`."""
    db = database.obj
    deadline = time.monotonic() + timeout
    announced = False
    while not db.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        if not announced:
            log.info("another instance is migrating; waiting for the migration lock")
            announced = True
        if time.monotonic() >= deadline:
            raise TimeoutError(f"migration lock not acquired within {timeout:.0f}s")
        time.sleep(poll)
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))


def migrate(lock_timeout: float = 120.0) -> list[str]:
    """Apply pending migrations under the advisory lock.  Returns the names applied by this call."""
    db = database.obj
    with db.connection_context(), advisory_lock(timeout=lock_timeout):
        applied = migration_runner().up()
    for name in applied:
        log.info("applied migration %s", name)
    return applied
