"""The JSON API blueprints (`/api/...`) and the one URL converter they share."""

from __future__ import annotations

from werkzeug.routing import BaseConverter

MAX_ID = 2**31 - 1  # the id columns are PostgreSQL integers


class RowId(BaseConverter):
    """`<id:name>`: a row id in the path, ASCII digits only (werkzeug's `int` takes any Unicode digit).  A number
    outside the column's range becomes 0, which no row has: the view answers 404 as for any missing row (a
    ValidationError here would make werkzeug answer 405 for the route's other methods)."""

    regex = r"[0-9]{1,10}"

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if 1 <= number <= MAX_ID else 0

    def to_url(self, value) -> str:
        return str(int(value))
