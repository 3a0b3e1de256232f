"""Login throttling, per account and per client address, in PostgreSQL (`login_throttle`), so every worker
and every instance counts the same attempts.

A key ("account:<email>", "address:<ip>") counts login attempts in a window of WINDOW_SECONDS from its first
one.  An attempt is counted BEFORE its password is checked (`begin`), in one atomic statement per key, so
concurrent attempts cannot slip past the limit while earlier ones are still hashing: at most LIMITS[scope]
passwords are ever checked per key and window.  The attempt that reaches the limit locks the key for
LOCKOUT_SECONDS; later ones are answered 429 with Retry-After before any password is checked -- the right
password included, and without spending a hash.  A successful attempt is taken back (`succeeded`): its account's
count is cleared, its address's count lowered by one (one good account must not reset an address that is
guessing others).  Each lockout is logged once, by the attempt that reached the limit, when it failed."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from mv_os.db import database

log = logging.getLogger("mv_os.throttle")

WINDOW_SECONDS = 300
LOCKOUT_SECONDS = 300
LIMITS = {"account": 5, "address": 30}  # password checks per window before the key is locked

# A key starts afresh once its window has passed and it is not locked (a lock outlasts the window it began in).
_FRESH = "t.window_start <= now() - make_interval(secs => %(window)s) AND coalesce(t.locked_until <= now(), true)"
_COUNT_SQL = f"""
INSERT INTO login_throttle AS t (key, failures, window_start, locked_until)
VALUES (%(key)s, 1, now(), CASE WHEN %(limit)s <= 1 THEN now() + make_interval(secs => %(lockout)s) END)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN {_FRESH} THEN 1 ELSE t.failures + 1 END,
    window_start = CASE WHEN {_FRESH} THEN now() ELSE t.window_start END,
    locked_until = CASE
        WHEN {_FRESH} THEN NULL
        WHEN t.failures + 1 = %(limit)s THEN now() + make_interval(secs => %(lockout)s)
        ELSE t.locked_until END
RETURNING failures, EXTRACT(EPOCH FROM locked_until - now())
"""  # noqa: S608 - only the constant _FRESH is formatted in; the values are parameters


@dataclass(frozen=True)
class Locked(Exception):
    """Logins for this account or address are refused for `retry_after` more seconds."""

    retry_after: int


@dataclass(frozen=True)
class Attempt:
    """A counted attempt: its keys and the count each reached (for the lockout line)."""

    email: str
    address: str
    counts: dict


def keys(email: str, address: str) -> dict[str, str]:
    return {"account": f"account:{email}", "address": f"address:{address}"}


def begin(email: str, address: str) -> Attempt:
    """Count an attempt against both keys; raise Locked when either was at its limit already."""
    counts, wait = {}, 0.0
    with database.atomic():
        for scope, key in sorted(keys(email, address).items()):  # one order everywhere: no deadlock
            params = {"key": key, "limit": LIMITS[scope], "window": WINDOW_SECONDS, "lockout": LOCKOUT_SECONDS}
            counts[scope], remaining = database.execute_sql(_COUNT_SQL, params).fetchone()
            if counts[scope] > LIMITS[scope]:
                wait = max(wait, float(remaining or 1))
    if wait:
        raise Locked(max(1, math.ceil(wait)))
    return Attempt(email, address, counts)


def failed(attempt: Attempt) -> None:
    """The password was wrong: the count stands.  The attempt that reached a key's limit logs its lockout."""
    for scope, count in attempt.counts.items():
        if count == LIMITS[scope]:
            log.warning(
                "login locked for %ds: %d failed logins for this %s within %ds",
                LOCKOUT_SECONDS,
                count,
                scope,
                WINDOW_SECONDS,
                extra={"throttle_scope": scope, "throttle_key": keys(attempt.email, attempt.address)[scope]},
            )


def succeeded(attempt: Attempt) -> None:
    """The password was right: the account starts afresh; the address gets this attempt back."""
    account, address = keys(attempt.email, attempt.address).values()
    with database.atomic():
        database.execute_sql("DELETE FROM login_throttle WHERE key = %s", (account,))
        database.execute_sql(
            "UPDATE login_throttle SET failures = GREATEST(failures - 1, 0), "
            "locked_until = CASE WHEN failures - 1 < %s THEN NULL ELSE locked_until END WHERE key = %s",
            (LIMITS["address"], address),
        )


def client_address(remote_addr: str | None, forwarded_for: str | None, proxy_hops: int) -> str:
    """The client's address: with `proxy_hops` trusted proxies in front (App Runner's: 1), the address the
    outermost of them saw, i.e. the `proxy_hops`-th entry from the right of X-Forwarded-For (the entries left of
    it are whatever the client sent); without proxies, the peer address."""
    if proxy_hops and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(hops) >= proxy_hops:
            return hops[-proxy_hops][:64]
    return (remote_addr or "unknown")[:64]
