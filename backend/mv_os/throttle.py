"""Login throttling, per account and per client address, in PostgreSQL (`login_throttle`), so every worker
and every instance counts the same failures.

A key ("account:<email>", "address:<ip>") collects failed logins in a window of WINDOW_SECONDS from its first
failure.  The failure that reaches the key's limit locks it for LOCKOUT_SECONDS (logged once, then); while a
key is locked every login it covers is answered 429 with Retry-After before any password is checked -- the
right password included, and without spending a hash on it.  A successful login clears its account's count
(not its address's: one good account must not reset an address that is guessing others)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from mv_os.db import database

log = logging.getLogger("mv_os.throttle")

WINDOW_SECONDS = 300
LOCKOUT_SECONDS = 300
LIMITS = {"account": 5, "address": 30}  # failures per window before the key is locked

_FAIL_SQL = """
INSERT INTO login_throttle AS t (key, failures, window_start, locked_until)
VALUES (%(key)s, 1, now(), CASE WHEN %(limit)s <= 1 THEN now() + make_interval(secs => %(lockout)s) END)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_start <= now() - make_interval(secs => %(window)s) THEN 1 ELSE t.failures + 1 END,
    window_start = CASE WHEN t.window_start <= now() - make_interval(secs => %(window)s)
                        THEN now() ELSE t.window_start END,
    locked_until = CASE
        WHEN t.window_start > now() - make_interval(secs => %(window)s) AND t.failures + 1 = %(limit)s
        THEN now() + make_interval(secs => %(lockout)s) ELSE t.locked_until END
RETURNING failures
"""


@dataclass(frozen=True)
class Locked(Exception):
    """Logins for this account or address are refused for `retry_after` more seconds."""

    retry_after: int


def keys(email: str, address: str) -> dict[str, str]:
    return {"account": f"account:{email}", "address": f"address:{address}"}


def check(email: str, address: str) -> None:
    """Raise Locked when the account or the address is locked now."""
    row = database.execute_sql(
        "SELECT EXTRACT(EPOCH FROM max(locked_until) - now()) FROM login_throttle "
        "WHERE key = ANY(%s) AND locked_until > now()",
        (list(keys(email, address).values()),),
    ).fetchone()
    if row and row[0] is not None:
        raise Locked(max(1, math.ceil(float(row[0]))))


def failed(email: str, address: str) -> None:
    """Count a failed login against both keys; lock (and log, once) each key that reaches its limit."""
    for scope, key in keys(email, address).items():
        limit = LIMITS[scope]
        params = {"key": key, "limit": limit, "window": WINDOW_SECONDS, "lockout": LOCKOUT_SECONDS}
        with database.atomic():
            (failures,) = database.execute_sql(_FAIL_SQL, params).fetchone()
        if failures == limit:
            log.warning(
                "login locked for %ds: %d failed logins for this %s within %ds",
                LOCKOUT_SECONDS,
                limit,
                scope,
                WINDOW_SECONDS,
                extra={"throttle_scope": scope, "throttle_key": key},
            )


def succeeded(email: str) -> None:
    database.execute_sql("DELETE FROM login_throttle WHERE key = %s", (keys(email, "")["account"],))


def client_address(remote_addr: str | None, forwarded_for: str | None, proxy_hops: int) -> str:
    """The client's address: with `proxy_hops` trusted proxies in front (App Runner's: 1), the address the
    outermost of them saw, i.e. the `proxy_hops`-th entry from the right of X-Forwarded-For (the entries left of
    it are whatever the client sent); without proxies, the peer address."""
    if proxy_hops and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(hops) >= proxy_hops:
            return hops[-proxy_hops][:64]
    return (remote_addr or "unknown")[:64]
