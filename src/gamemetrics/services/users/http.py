"""What every route of the users service shares: JSON answers, refusals, and the bearer guard."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import psycopg
import structlog
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from gamemetrics.auth.tokens import InsufficientScope, InvalidToken, Principal, TokenVerifier
from gamemetrics.ports.bus import BusError

log = structlog.get_logger("users")
_json = msgspec.json.Encoder(decimal_format="number")
Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """Refuse the request with `status` and a message the caller can act on."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json", headers=headers)


def guarded(handler: Handler) -> Handler:
    """Refusals become their status; a database or bus that is away becomes 503; nothing else leaks."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            body = {"error": exc.message} if exc.code is None else {"error": exc.code, "error_description": exc.message}
            return json_response(body, exc.status, exc.headers)
        except InvalidToken as exc:
            challenge = f'Bearer error="invalid_token", error_description="{_quote(exc)}"'
            return json_response({"error": f"invalid token: {exc}"}, 401, {"WWW-Authenticate": challenge})
        except InsufficientScope as exc:
            return json_response({"error": str(exc)}, 403,
                                 {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{exc.args[1]}"'
                                  if len(exc.args) > 1 else 'Bearer error="insufficient_scope"'})
        except (psycopg.OperationalError, PoolTimeout, BusError) as exc:
            log.warning("storage unavailable", path=request.url.path, error=str(exc))
            return json_response({"error": "storage is unavailable; nothing was changed, retry later"}, 503,
                                 {"Retry-After": "1"})

    return wrapper


def _quote(exc: Exception) -> str:
    return str(exc).replace('"', "'").replace("\\", "/")[:200]


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer token is required (Authorization: Bearer <access token>)")
    return token.strip()


class Guard:
    """Checks the bearer token and scope of a request; the principal carries the tenant."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def __call__(self, request: Request, scope: str) -> Principal:
        principal = await self._verifier.verify(bearer_token(request))
        if scope not in principal.scopes:
            raise InsufficientScope(f"this token lacks the scope {scope!r}", scope)
        return principal


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
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        value = request.path_params[name]
        raise ApiError(404, f"no such {name.removesuffix('_id')}: {value!r} is not a UUID") from None


def path_player(request: Request) -> str:
    """The player id of the path: 1-256 characters without NUL, as the event contract has it."""
    player_id = request.path_params["player_id"]
    if not 1 <= len(player_id) <= 256 or "\x00" in player_id:
        raise ApiError(400, "a player id has 1-256 characters and no NUL")
    return player_id


def actor_of(principal: Principal) -> str:
    """How the audit log names a token's holder."""
    return f"client:{principal.subject}" if not principal.subject.startswith(("operator:", "tenant:")) \
        else principal.subject
