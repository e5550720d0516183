"""Who is calling: the bearer token's principal, with its scope checked, and the game of the path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from gamemetrics.auth.tokens import InvalidToken, Principal, TokenVerifier
from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.requests import path_uuid


def bearer_token(request: Request) -> str:
    """The access token of `Authorization: Bearer`, or InvalidToken saying how to send one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer token is required (Authorization: Bearer <access token>)")
    return token.strip()


GameKey = tuple[uuid.UUID, uuid.UUID]
# Asked of every verified principal; raises InvalidToken when what the token names is no longer so.
SubjectCheck = Callable[[Principal], Awaitable[None]]


class Guard:
    """Resolves a request's principal from its bearer token and checks its scope; the principal
    carries the tenant. Refusals are raised for the app's exception handlers to answer.

    With `verified`, a token whose signature was checked is trusted again for as long as the memo
    keeps it (never past its expiry); with `games`, a game found in a tenant is not looked up again
    while kept (a game never changes tenant; a missing one is looked up every time, so a new game
    is seen at once). For hot read paths, where both cost more than the answer they unlock.

    With `subjects`, every principal is also checked against what its subject is now (an operator
    disabled or given another role since the token was issued is refused before it expires)."""

    def __init__(self, verifier: TokenVerifier, tenancy: TenancyStore, *, verified: Memo[str, Principal] | None = None,
                 games: Memo[GameKey, bool] | None = None, subjects: SubjectCheck | None = None) -> None:
        self._verifier = verifier
        self._tenancy = tenancy
        self._verified = verified
        self._games = games
        self._subjects = subjects

    async def __call__(self, request: Request, scope: str | None) -> Principal:
        """The caller, with `scope` (None: any): InvalidToken (401) or InsufficientScope (403) otherwise."""
        token = bearer_token(request)
        principal = self._verified.get(token) if self._verified is not None else MISS
        if principal is MISS or principal.expired:
            principal = await self._verifier.verify(token)
            if self._verified is not None:
                self._verified.put(token, principal)
        if self._subjects is not None:
            await self._subjects(principal)
        if scope is not None:
            principal.require(scope)
        return principal

    async def tenant_game(self, request: Request, scope: str) -> tuple[Principal, uuid.UUID]:
        """The caller, with `scope`, and the path's `game_id`, a game of the caller's tenant (404 otherwise)."""
        principal = await self(request, scope)
        game_id = path_uuid(request, "game_id")
        key = (principal.tenant_id, game_id)
        if self._games is not None and self._games.get(key) is True:
            return principal, game_id
        if not await self._tenancy.game_of_tenant(principal.tenant_id, game_id):
            raise ApiError(404, f"no game {game_id} in this tenant")
        if self._games is not None:
            self._games.put(key, True)
        return principal, game_id
