"""Striped, transaction-scoped advisory locks on contacts and wamids.

Keys map to LOCK_STRIPES locks, so a batch of thousands of contacts and wamids holds at most LOCK_STRIPES of
them, far below PostgreSQL's shared lock table (max_locks_per_transaction x max_connections), at the price
of the odd false conflict.  Every caller takes its locks once, up front, in sorted order: no deadlocks."""

from __future__ import annotations

from collections.abc import Iterable

from mv_os.db import database

LOCK_STRIPES = 1024
LOCK_BASE = 0x6D76_0000_0000  # "mv" in the high bytes, apart from db.MIGRATION_LOCK_KEY


def lock(keys: Iterable[str]) -> None:
    """Take every key's stripe in one round trip, held until the transaction ends."""
    keys = sorted(set(keys))
    if len(keys) == 1:
        database.execute_sql(
            "SELECT pg_advisory_xact_lock(%s + (hashtextextended(%s, 0) & %s))", (LOCK_BASE, keys[0], LOCK_STRIPES - 1)
        )
    elif keys:
        database.execute_sql(
            "SELECT count(pg_advisory_xact_lock(s)) FROM (SELECT DISTINCT %s + (hashtextextended(k, 0) & %s) AS s "
            "FROM unnest(%b::text[]) AS k ORDER BY s) AS stripes",
            (LOCK_BASE, LOCK_STRIPES - 1, keys),
        )


def contact_keys(wa_id: str | None, user_id: str | None) -> list[str]:
    return [k for k in (wa_id and f"contact:wa:{wa_id}", user_id and f"contact:user:{user_id}") if k]


def wamid_key(wamid: str) -> str:
    return f"wamid:{wamid}"
