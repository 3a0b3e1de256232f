"""The real PostgreSQL the tests use: TEST_DATABASE_URL or DATABASE_URL when set, else the embedded server.

Each pytest worker (xdist) gets its own throwaway database, migrated once, emptied after each test that
writes (`truncate_all`).  Nothing here ever skips: without a PostgreSQL the run fails, so CI can never go
green on skipped database tests.  Also the SQL look-ups the tests assert with."""

from __future__ import annotations

import os
import time

import psycopg

from mv_os.localdb import STATE_DIR, ensure_database, server_url, with_database


def admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return with_database(url, "postgres")
    return server_url(STATE_DIR / "pgdata")


def create_worker_database(worker: str) -> tuple[str, str]:
    """Returns (admin_url, url of a fresh database for this worker)."""
    admin = admin_url()
    name = f"mv_os_test_{worker}_{os.getpid()}"
    return admin, ensure_database(admin, name, recreate=True)


# Children before parents, so DELETE never trips a foreign key (NO ACTION ones included).
_TABLES_CHILDREN_FIRST = """
WITH RECURSIVE t AS (
    SELECT c.oid, c.relname FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migration'
), depth(oid, d) AS (
    SELECT oid, 0 FROM t
    UNION ALL
    SELECT f.confrelid, depth.d + 1 FROM depth JOIN pg_constraint f ON f.conrelid = depth.oid
    WHERE f.contype = 'f' AND f.confrelid <> f.conrelid AND depth.d < 20
)
SELECT t.relname, max(depth.d) AS d FROM t JOIN depth USING (oid) GROUP BY t.relname ORDER BY d, t.relname
"""


_TRUNCATE: dict[str, tuple[psycopg.Connection, str]] = {}  # database URL -> (open connection, the emptying script)


def truncate_all(url: str) -> None:
    """Empty every table but schema_migration and restart the id sequences, as TRUNCATE ... RESTART IDENTITY
    would, in one transaction.  DELETE instead of TRUNCATE: the tables hold a handful of rows, DELETE of an
    empty table writes nothing, and it does not wait for the ACCESS EXCLUSIVE lock that a live server's idle
    connections (or its webhook processor) would hold it up on.  Falls back to TRUNCATE for a foreign-key cycle.

    A live server's webhook processor may be storing a batch at that moment (it locks the same rows in the other
    order): then this gives up the lock wait quickly and tries again, instead of deadlocking.

    Most tests end with this, so it is cheap: one connection per database stays open for the session and the
    statements go in one round trip.  A connection the server dropped (restarted, database recreated) is
    replaced."""
    for attempt in range(50):
        conn, script = _truncate_connection(url)
        if script is None:
            return
        try:
            conn.execute(script)
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            conn.execute("ROLLBACK")  # the script's BEGIN left the session in the failed transaction
            if attempt == 49:
                raise
            time.sleep(0.05)
        except psycopg.OperationalError:
            _TRUNCATE.pop(url, None)
            conn.close()
            if attempt == 49:
                raise


def _truncate_connection(url: str) -> tuple[psycopg.Connection, str | None]:
    cached = _TRUNCATE.get(url)
    if cached is not None and not cached[0].closed:
        return cached
    conn = psycopg.connect(url, autocommit=True)
    tables = conn.execute(_TABLES_CHILDREN_FIRST).fetchall()
    if not tables:  # not migrated yet: nothing to empty, and nothing worth keeping a connection for
        conn.close()
        return conn, None
    if max(d for _, d in tables) >= 20:  # a cycle: let TRUNCATE ... CASCADE sort it out
        statements = ["TRUNCATE " + ", ".join(f'"{t}"' for t, _ in tables) + " RESTART IDENTITY CASCADE"]
    else:  # children (depth 0) first, the tables they reference after them
        statements = [f'DELETE FROM "{t}"' for t, _ in tables]  # noqa: S608 - names from pg_class
        statements.append(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
            "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
        )
    # One simple-protocol query: BEGIN ... COMMIT in a single round trip.
    script = "BEGIN; SET LOCAL lock_timeout = '200ms'; " + "; ".join(statements) + "; COMMIT"
    _TRUNCATE[url] = (conn, script)
    return conn, script


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(url: str, sql: str, params: tuple = ()):
    result = rows(url, sql, params)
    return result[0][0] if result else None


def wait_processed(url: str, timeout: float = 15.0) -> None:
    """Wait until the webhook processor has stored every archived payload (a 200 means "archived"; the
    messages reach the inbox moments later)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:  # one connection for the whole wait
        while conn.execute("SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL").fetchone()[0]:
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook payloads still unprocessed after {timeout:.0f}s")
            time.sleep(0.01)


def outbound_message(url: str, wamid: str, status: str = "accepted", wa_id: str = "4915112345678") -> int:
    """Insert a contact, conversation and outbound message straight into the database; returns the message id."""
    with psycopg.connect(url, autocommit=True) as conn:
        contact = conn.execute(
            "INSERT INTO contacts (wa_id, profile_name, created_at, updated_at) VALUES (%s, 'Out', now(), now()) "
            "ON CONFLICT (wa_id) DO UPDATE SET profile_name = EXCLUDED.profile_name RETURNING id",
            (wa_id,),
        ).fetchone()[0]
        conversation = conn.execute(
            "INSERT INTO conversations (phone_number_id, contact_id, last_message_at, created_at) "
            "VALUES ('106540352242922', %s, now(), now()) "
            "ON CONFLICT (phone_number_id, contact_id) DO UPDATE SET last_message_at = now() RETURNING id",
            (contact,),
        ).fetchone()[0]
        return conn.execute(
            "INSERT INTO messages (conversation_id, direction, wamid, type, text, status, sent_at, created_at, "
            "updated_at) VALUES (%s, 'out', %s, 'text', 'hello', %s, now(), now(), now()) RETURNING id",
            (conversation, wamid, status),
        ).fetchone()[0]
