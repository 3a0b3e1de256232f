"""DATABASE_URL parsing, shared by `db` (to connect) and `settings` (to check where it points)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
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


def is_local_host(host: str) -> bool:
    """Whether a libpq host names this machine: empty or a socket path, any `localhost` spelling, a loopback,
    link-local or unspecified address in any notation libpq's resolver accepts (`127.1`, `0x7f000001`,
    `::ffff:127.0.0.2`, `[::1]`)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "" or host.startswith(("/", "@")) or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified


@dataclass(frozen=True)
class DatabaseTarget:
    """What a DATABASE_URL points at, for the cross-environment guard (no password kept): every host of a
    multi-host URL, `hostaddr` included, lower-cased."""

    hosts: tuple[str, ...]
    dbname: str

    @property
    def is_local(self) -> bool:
        return any(is_local_host(host) for host in self.hosts)
