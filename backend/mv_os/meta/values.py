"""Untrusted JSON values made safe to store: PostgreSQL's text and jsonb refuse NUL characters, lone surrogates
and NaN/Infinity, and a signed payload's shape is still Meta's to change."""

from __future__ import annotations

import datetime as dt
import json
import math

MAX_DEPTH = 100


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads_strict(data):
    """`json.loads` without Python's extensions: `NaN`, `Infinity` and `-Infinity` raise ValueError, as any
    other text that is not JSON (RFC 8259) does."""
    return json.loads(data, parse_constant=_no_constant)


def clean(value, depth: int = 0):
    """JSON that PostgreSQL accepts: no NUL characters, no lone surrogates, no NaN/Infinity."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_str(str(k)): clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, depth + 1) for v in value]
    return None


def clean_str(value: str) -> str:
    if value.isascii() and "\x00" not in value:  # the common case, without a copy
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def clean_json(value) -> str:
    """`value` as JSON text that jsonb accepts; serialized once in the common case."""
    try:
        rendered = json.dumps(value, ensure_ascii=False, allow_nan=False)
        rendered.encode("utf-8")  # lone surrogates raise here
    except (ValueError, UnicodeEncodeError, RecursionError):
        return json.dumps(clean(value), ensure_ascii=False)
    if "\\u0000" in rendered:
        return json.dumps(clean(value), ensure_ascii=False)
    return rendered


def text(value, max_length: int | None = None) -> str | None:
    """A scalar as a clean string (None for missing/empty/containers, or longer than `max_length`)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result = clean_str(str(value)).strip()
    if not result or (max_length is not None and len(result) > max_length):
        return None
    return result


def as_list(value) -> list:
    return value if isinstance(value, list) else []


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def parse_timestamp(value) -> dt.datetime | None:
    """Meta's timestamps are strings of Unix seconds."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
