"""CPU-heavy calls that must not stall a gevent worker (gunicorn.conf.py: gevent workers by default).

A gevent worker serves all its requests on one OS thread: a call that computes for 0.1 s (a scrypt password
hash) holds every other request of that worker -- webhooks included -- for 0.1 s.  `off_loop` runs such a call
on a real OS thread from gevent's thread pool while the worker keeps serving; it only helps calls that release
the GIL, as `hashlib.scrypt` does.  Outside a gevent worker (gthread, the dev server, tests, the CLI) it is a
plain call."""

from __future__ import annotations

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
