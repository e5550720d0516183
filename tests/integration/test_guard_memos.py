"""`Guard` with its memos: a verified token is trusted again without its signature being checked
(never past its expiry, its scopes still checked), a game found in a tenant is not looked up
again, and a game not found is looked up every time."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.auth.signing import DatabaseKeySet, SigningKeyStore
from gamemetrics.auth.tokens import InsufficientScope, InvalidToken, TokenIssuer, TokenVerifier
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard

ISSUER, AUDIENCE, SCOPE = "gamemetrics-test", "gamemetrics-api", "recommendations:read"


@dataclass
class Guards:
    pool: AsyncConnectionPool
    issuer: TokenIssuer
    tenancy: TenancyStore
    memoised: Guard
    plain: Guard


@pytest_asyncio.fixture
async def guards(database_url: str) -> AsyncIterator[Guards]:
    pool = await open_pool(database_url, max_size=2, name="test-guard-memos")
    keys = SigningKeyStore(pool, os.urandom(32), rotate_after=timedelta(days=30), retire_after=timedelta(days=1),
                           refresh_s=0.0)
    await keys.current()

    def verifier() -> TokenVerifier:  # reads the keys' table on every token it has not seen
        return TokenVerifier(DatabaseKeySet(pool, cache_s=0.0, refetch_after_s=0.0), issuer=ISSUER,
                             audience=AUDIENCE, leeway_s=0)

    tenancy = TenancyStore(pool)
    memoised = Guard(verifier(), tenancy, verified=LocalMemo(100, ttl_seconds=60), games=LocalMemo(100, ttl_seconds=60))
    try:
        yield Guards(pool, TokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, ttl_s=600), tenancy, memoised,
                     Guard(verifier(), tenancy))
    finally:
        await pool.close()


def request(game_id: uuid.UUID | str, token: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": f"/games/{game_id}", "query_string": b"",
                    "headers": [(b"authorization", f"Bearer {token}".encode())],
                    "path_params": {"game_id": str(game_id)}})


async def test_a_verified_token_is_trusted_again_with_its_scopes_checked(guards: Guards) -> None:
    tenant = await guards.tenancy.create_tenant("memo")
    game = await guards.tenancy.create_game(tenant, "g")
    token = guards.issuer.issue(tenant, [SCOPE])
    for guard in (guards.memoised, guards.plain):
        principal, found = await guard.tenant_game(request(game, token), SCOPE)
        assert (principal.tenant_id, found) == (tenant, game)
    async with guards.pool.connection() as conn:  # no key left to check a signature with
        await conn.execute("DELETE FROM signing_keys")
    with pytest.raises(InvalidToken, match="unknown key id"):
        await guards.plain.tenant_game(request(game, token), SCOPE)
    principal, _ = await guards.memoised.tenant_game(request(game, token), SCOPE)
    assert principal.tenant_id == tenant
    with pytest.raises(InsufficientScope):
        await guards.memoised(request(game, token), "admin")
    with pytest.raises(InvalidToken):  # a token never seen is checked, and refused
        await guards.memoised(request(game, guards.issuer.issue(tenant, [SCOPE])), SCOPE)


async def test_a_memoised_token_is_refused_once_expired(guards: Guards) -> None:
    tenant = await guards.tenancy.create_tenant("memo")
    game = await guards.tenancy.create_game(tenant, "g")
    token = guards.issuer.issue(tenant, [SCOPE], ttl_s=1)
    await guards.memoised.tenant_game(request(game, token), SCOPE)
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken, match="expired"):
        await guards.memoised.tenant_game(request(game, token), SCOPE)


async def test_games_found_are_kept_and_games_missing_are_looked_up_again(guards: Guards) -> None:
    tenant = await guards.tenancy.create_tenant("memo")
    other = await guards.tenancy.create_tenant("other")
    foreign = await guards.tenancy.create_game(other, "theirs")
    token = guards.issuer.issue(tenant, [SCOPE])
    for _ in range(2):  # another tenant's game is refused every time
        with pytest.raises(ApiError) as refused:
            await guards.memoised.tenant_game(request(foreign, token), SCOPE)
        assert refused.value.status == 404
    game = uuid.uuid4()
    with pytest.raises(ApiError):
        await guards.memoised.tenant_game(request(game, token), SCOPE)
    async with guards.pool.connection() as conn:  # the game made after a refusal is found at once
        await conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'late')", (game, tenant))
    assert (await guards.memoised.tenant_game(request(game, token), SCOPE))[1] == game
    async with guards.pool.connection() as conn:
        await conn.execute("DELETE FROM games WHERE game_id = %s", (game,))
    assert (await guards.memoised.tenant_game(request(game, token), SCOPE))[1] == game  # kept
    with pytest.raises(ApiError):
        await guards.plain.tenant_game(request(game, token), SCOPE)
