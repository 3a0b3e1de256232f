"""DATABASE_URL parsing, shared by `db` (to connect) and `settings` (to check where it points)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from psycopg.conninfo import conninfo_to_dict


def connect_params(url: str) -> dict:
    """libpq parameters from a DATABASE_URL.  `schema=<name>` (Prisma style, as in the seed) is not a libpq
    parameter: it is removed and turned into `options=-csearch_path=<name>`."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    schema = query.get("schema")
    cleaned = re.sub(r"([?&])schema=[^&]*&?", r"\1", url).rstrip("?&")
    params = conninfo_to_dict(cleaned)
    if schema:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", schema):
            raise ValueError("DATABASE_URL schema must be a plain identifier")
        options = str(params.get("options") or "")
        params["options"] = f"{options} -csearch_path={schema}".strip()
    return params
