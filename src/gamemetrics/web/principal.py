"""Who is calling: the bearer token's principal, with its scope checked, and the game of the path."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from gamemetrics.auth.tokens import InvalidToken, Principal, TokenVerifier
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.requests import path_uuid


def bearer_token(request: Request) -> str:
    """The access token of `Authorization: Bearer`, or InvalidToken saying how to send one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer token is required (Authorization: Bearer <access token>)")
    return token.strip()


class Guard:
    """Resolves a request's principal from its bearer token and checks its scope; the principal
    carries the tenant. Refusals are raised for the app's exception handlers to answer."""

    def __init__(self, verifier: TokenVerifier, tenancy: TenancyStore) -> None:
        self._verifier = verifier
        self._tenancy = tenancy

    async def __call__(self, request: Request, scope: str) -> Principal:
        """The caller, with `scope`: InvalidToken (401) or InsufficientScope (403) otherwise."""
        principal = await self._verifier.verify(bearer_token(request))
        principal.require(scope)
        return principal

    async def tenant_game(self, request: Request, scope: str) -> tuple[Principal, uuid.UUID]:
        """The caller, with `scope`, and the path's `game_id`, a game of the caller's tenant (404 otherwise)."""
        principal = await self(request, scope)
        game_id = path_uuid(request, "game_id")
        if not await self._tenancy.game_of_tenant(principal.tenant_id, game_id):
            raise ApiError(404, f"no game {game_id} in this tenant")
        return principal, game_id
