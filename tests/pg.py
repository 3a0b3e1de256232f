"""The real PostgreSQL the tests use: TEST_DATABASE_URL or DATABASE_URL when set, else the embedded server.

Each pytest worker (xdist) gets its own throwaway database, migrated once.  Nothing here ever skips: without
a PostgreSQL the run fails, so CI can never go green on skipped database tests."""

from __future__ import annotations

import os

from mv_os.localdb import STATE_DIR, drop_database, ensure_database, server_url, with_database


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


__all__ = ["admin_url", "create_worker_database", "drop_database"]
