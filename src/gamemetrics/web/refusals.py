"""Exception handlers every app registers: each refusal, bad token or storage outage becomes its answer.

Routes raise; the app's `exception_handlers=` turns what they raise into a status, a body and
headers, so no route catches a database or bus error itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psycopg
import structlog
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import HTTPExceptionHandler

from gamemetrics.auth.tokens import InsufficientScope, InvalidToken
from gamemetrics.ports.bus import BusError
from gamemetrics.web.challenge import bearer_challenge
from gamemetrics.web.errors import ApiError, retry_after
from gamemetrics.web.responses import json_response

log = structlog.get_logger("http")
Render = Callable[[ApiError], Response]
# A database or bus that is away: the request may be sent again once it is back.
UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout, BusError)
UNCHANGED = "storage is unavailable; nothing was changed, retry later"


def error_body(error: ApiError) -> Response:
    """`{"error": message}`, or RFC 6749 §5.2's `{"error": code, "error_description": message}`."""
    body = {"error": error.message} if error.code is None else {"error": error.code, "error_description": error.message}
    return json_response(body, error.status, error.headers)


def token_refusal(exc: InvalidToken, message: str) -> ApiError:
    """401 with the bearer challenge naming why the token was refused."""
    return ApiError(401, message, headers={"WWW-Authenticate": bearer_challenge("invalid_token", description=str(exc))})


def scope_refusal(exc: InsufficientScope) -> ApiError:
    """403 with the bearer challenge naming the scope the request needs."""
    return ApiError(403, str(exc), headers={"WWW-Authenticate": bearer_challenge("insufficient_scope",
                                                                                 scope=exc.scope)})


def exception_handlers(
    *, render: Render = error_body, unavailable: str = UNCHANGED,
    unavailable_errors: tuple[type[Exception], ...] = UNAVAILABLE,
    token_message: Callable[[InvalidToken], str] = str, refused: Callable[[ApiError], None] | None = None,
) -> Mapping[type[Exception], HTTPExceptionHandler]:
    """The handlers to pass to `Starlette(exception_handlers=...)`.

    `render` shapes every body; `unavailable` is the message of the 503 a storage outage
    (`unavailable_errors`) gets; `token_message` words the 401; `refused` sees each refusal (to count it).
    """
    def refusal(request: Request, exc: Exception) -> ApiError:
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, HTTPException):
            return routing_refusal(request, exc)
        if isinstance(exc, InvalidToken):
            return token_refusal(exc, token_message(exc))
        if isinstance(exc, InsufficientScope):
            return scope_refusal(exc)
        log.warning("storage unavailable", path=request.url.path, error=str(exc), error_type=type(exc).__name__)
        return ApiError(503, unavailable, headers=retry_after(1))

    async def handle(request: Request, exc: Exception) -> Response:
        if request.scope["type"] != "http":  # a WebSocket has no status to answer with: it closes as before
            raise exc
        error = refusal(request, exc)
        if refused is not None:
            refused(error)
        return render(error)

    return {kind: handle for kind in (ApiError, HTTPException, InvalidToken, InsufficientScope, *unavailable_errors)}


def routing_refusal(request: Request, exc: HTTPException) -> ApiError:
    """What the router raises (no route for the path, a method the route does not take), in words."""
    path = request.url.path
    if exc.status_code == 404:
        message = f"nothing is served at {path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not accepted at {path}" + (f"; use {allowed}" if allowed else "")
    else:
        message = exc.detail
    return ApiError(exc.status_code, message, headers=dict(exc.headers or {}))
