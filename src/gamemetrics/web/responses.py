"""JSON answers."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_json = msgspec.json.Encoder(decimal_format="number")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`body` as JSON (UUIDs, datetimes and decimals included) with `status` and `headers`."""
    return Response(_json.encode(body), status_code=status, media_type="application/json", headers=headers)
