"""Reading a request's parts: its JSON body and the ids in its path, or a 4xx that says why not."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from starlette.requests import Request

from gamemetrics.web.errors import ApiError


async def json_body(request: Request, *, max_bytes: int = 64 * 1024,
                    media_types: tuple[str, ...] = ("application/json",)) -> Any:
    """The request's JSON body (at most `max_bytes`), or a 400/413/415 that says why not."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in media_types:
        raise ApiError(415, f"send the body as {' or '.join(media_types)}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"the body is larger than {max_bytes} bytes")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """The UUID of the path parameter `name`; a 404 naming it when it is not one."""
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        value = request.path_params[name]
        raise ApiError(404, f"no such {name.removesuffix('_id')}: {value!r} is not a UUID") from None


def path_player(request: Request) -> str:
    """The player id of the path: 1-256 characters without NUL, as the event contract has it."""
    player_id: str = request.path_params["player_id"]
    if not 1 <= len(player_id) <= 256 or "\x00" in player_id:
        raise ApiError(400, "a player id has 1-256 characters and no NUL")
    return player_id
