"""DATABASE_URL parsing (the seed's ?schema=public), readiness with pending migrations, and the migration lock."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from mv_os import create_app, db
from mv_os.localdb import drop_database, ensure_database, with_database
from mv_os.settings import Settings
from tests.support.databases import admin_url

SEED_URL = "postgresql://postgres:postgres@localhost:5432/mv_os?schema=public"


@pytest.mark.unit
def test_seed_url_is_accepted_and_schema_becomes_search_path():
    params = db.connect_params(SEED_URL)
    assert params == {
        "user": "postgres",
        "password": "postgres",  # pragma: allowlist secret (test value)
        "host": "localhost",
        "port": "5432",
        "dbname": "mv_os",
        "options": "-csearch_path=public",
    }
    Settings.from_env({"DATABASE_URL": SEED_URL})  # the seed's own URL passes validation


def test_schema_parameter_is_applied_on_a_real_connection(migrated_url):
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS tenant_x")
        conn.execute("CREATE TABLE IF NOT EXISTS tenant_x.marker (v int)")
    sep = "&" if "?" in migrated_url else "?"
    database = db.make_database(migrated_url + sep + "schema=tenant_x")
    try:
        with database.connection_context():
            assert database.execute_sql("SELECT current_schema()").fetchone()[0] == "tenant_x"
            assert database.execute_sql("SELECT count(*) FROM marker").fetchone()[0] == 0
    finally:
        database.close_all()


@pytest.mark.unit
def test_schema_must_be_an_identifier():
    with pytest.raises(ValueError, match="schema"):
        db.connect_params("postgresql://localhost/mv_os?schema=public;drop")


@pytest.fixture
def fresh_db():
    """An empty database (no migrations applied) on the test server."""
    admin = admin_url()
    name = f"mv_os_fresh_{time.time_ns()}"
    url = ensure_database(admin, name)
    yield url
    if db.database.obj is not None:
        db.database.obj.close_all()
    drop_database(admin, name)


def test_readyz_is_503_with_the_pending_migration_then_200(fresh_db, tmp_path, monkeypatch):
    app = create_app(Settings(database_url=fresh_db))
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "pending migrations"
    assert "0001_initial" in response.get_json()["pending"]

    with app.app_context():
        db.migrate()
    assert client.get("/readyz").status_code == 200

    # A new migration file appears (a new image) but has not run yet: not ready.
    migrations = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, migrations)
    (migrations / "9999_future.py").write_text("def up(migrator, db):\n    pass\n")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", migrations)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["pending"] == ["9999_future"]
    with app.app_context():
        assert db.migrate() == ["9999_future"]
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_is_down_but_healthz_is_200():
    dead = "postgresql://postgres@127.0.0.1:1/mv_os?connect_timeout=1"
    app = create_app(Settings(database_url=dead))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "database unavailable"}


def all_migrations() -> list[str]:
    """Every numbered migration file, in order (grows as features add migrations)."""
    return sorted(p.stem for p in db.MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


class _Announced(logging.Handler):
    """Set once mv_os.db logs that it is waiting for the migration lock."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for the migration lock" in record.getMessage():
            self.event.set()


def test_migrate_waits_for_the_advisory_lock(fresh_db):
    app = create_app(Settings(database_url=fresh_db))
    holder = psycopg.connect(fresh_db, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (db.MIGRATION_LOCK_KEY,))
    result: dict = {}

    def run():
        with app.app_context():
            try:
                result["applied"] = db.migrate(lock_timeout=30)
            except Exception as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

    logger = logging.getLogger("mv_os.db")
    announced, level = _Announced(), logger.level
    logger.addHandler(announced)
    logger.setLevel(logging.INFO)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        # It found the lock taken and said so; after another 0.2 s retry it is still waiting.
        assert announced.event.wait(timeout=30), "migrate did not wait for the lock"
        time.sleep(0.3)
    finally:
        logger.removeHandler(announced)
        logger.setLevel(level)
    # While another instance holds the lock, nothing is applied.
    tables = holder.execute("SELECT to_regclass('public.schema_migration')").fetchone()[0]
    assert tables is None
    assert thread.is_alive()
    holder.execute("SELECT pg_advisory_unlock(%s)", (db.MIGRATION_LOCK_KEY,))
    thread.join(timeout=30)
    holder.close()
    assert result == {"applied": all_migrations()}


def test_migrate_gives_up_after_the_lock_timeout(fresh_db):
    app = create_app(Settings(database_url=fresh_db))
    with psycopg.connect(fresh_db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (db.MIGRATION_LOCK_KEY,))
        with app.app_context(), pytest.raises(TimeoutError, match="migration lock"):
            db.migrate(lock_timeout=0.2)  # one retry (every 0.2 s), then it gives up


def test_concurrent_instances_migrate_exactly_once(fresh_db):
    """Several instances start at once (as App Runner does): all succeed, each migration runs once.

    Four instances, each on its own connection, released together: the advisory lock works per connection, so
    threads prove what processes would.  Two real processes through the image's start command (`flask migrate`
    then gunicorn) are test_dockerfile.py's test_the_image_start_command_serves_readyz_on_a_fresh_database."""
    app = create_app(Settings(database_url=fresh_db))
    together = threading.Barrier(4)

    def instance(_: int) -> list[str]:
        with app.app_context():
            together.wait(timeout=30)
            return db.migrate(lock_timeout=60)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(instance, range(4)))
    assert sorted(results, key=len) == [[], [], [], all_migrations()]
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT name FROM schema_migration ORDER BY name").fetchall()
    assert rows == [(name,) for name in all_migrations()]


def test_migrate_check_lists_pending(fresh_db):
    """The command's logic, in-process (click's runner).  `flask --app mv_os migrate` as a real process runs in
    test_dockerfile.py (the image's start command) and test_settings.py (a config error's exit status)."""
    runner = create_app(Settings(database_url=fresh_db)).test_cli_runner()
    first = runner.invoke(args=["migrate", "--check"])
    assert first.exit_code == 1
    assert "pending 0001_initial" in first.output
    assert runner.invoke(args=["migrate"]).exit_code == 0
    again = runner.invoke(args=["migrate", "--check"])
    assert again.exit_code == 0
    assert "pending" not in again.output


@pytest.mark.unit
def test_with_database_keeps_the_socket_query():
    url = "postgresql://postgres:@/postgres?host=/tmp/sock"
    assert with_database(url, "other") == "postgresql://postgres:@/other?host=/tmp/sock"
