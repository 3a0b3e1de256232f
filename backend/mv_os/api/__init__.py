"""The JSON API blueprints (`/api/...`) and the one URL converter they share."""

from __future__ import annotations

from werkzeug.routing import BaseConverter, ValidationError

MAX_ID = 2**31 - 1  # the id columns are PostgreSQL integers


class RowId(BaseConverter):
    """`<id:name>`: a row id in the path, ASCII digits only (werkzeug's `int` takes any Unicode digit) and within
    the column's range; anything else is 404, like a missing row."""

    regex = r"[0-9]{1,10}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value) -> str:
        return str(int(value))
