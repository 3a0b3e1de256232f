"""CPU-heavy calls that must not stall a gevent worker (gunicorn.conf.py: gevent workers by default).

A gevent worker serves all its requests on one OS thread: a call that computes for 0.1 s (a scrypt password
hash) holds every other request of that worker -- webhooks included -- for 0.1 s.  `off_loop` runs such a call
on a real OS thread from gevent's thread pool while the worker keeps serving; it only helps calls that release
the GIL, as `hashlib.scrypt` does.  Outside a gevent worker (gthread, the dev server, tests, the CLI) it is a
plain call."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def gevent_worker() -> bool:
    """True in a process whose threading gevent has monkey-patched (a gunicorn gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def off_loop(fn: Callable[..., T], /, *args, **kwargs) -> T:
    if gevent_worker():
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args, kwargs)
    return fn(*args, **kwargs)


# The nice value of a thread that computes for a login (Linux: per thread).  Beside the worker's request thread
# at 0 it gets about a quarter of a contended CPU, so a login flood slows logins, not webhook ingestion; on an
# idle CPU it runs at full speed.
BACKGROUND_NICE = 5


def off_loop_background(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """`off_loop`, on a thread whose CPU priority is lowered to BACKGROUND_NICE (gevent's pool threads only
    ever run such calls and DNS lookups).  Outside a gevent worker: a plain call, priority untouched."""
    if gevent_worker():
        import gevent

        return gevent.get_hub().threadpool.apply(_niced, (fn, args, kwargs))
    return fn(*args, **kwargs)


def _niced(fn, args, kwargs):
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted: full priority
        if os.getpriority(os.PRIO_PROCESS, 0) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, 0, BACKGROUND_NICE)  # who=0: this thread (Linux/NPTL)
    return fn(*args, **kwargs)
