"""The caller and the path's game: `Guard.tenant_game` on a small app, and every users route that
takes a game refusing another tenant's with the same 404."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.services.users.http import refusals
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.principal import Guard
from gamemetrics.web.responses import json_response
from tests.integration.users_fixtures import Users, add_tenant

SCOPE = "players:read"


@pytest.fixture
def game_app(users: Users) -> Iterator[TestClient]:
    """An app of one route, `/games/{game_id}`, answering the caller's tenant and the game."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await open_pool(users.database_url, max_size=2, name="tenant-game-test")
        guard = Guard(token_verifier(users.settings, pool), TenancyStore(pool))

        async def game(request: Request) -> Response:
            principal, game_id = await guard.tenant_game(request, SCOPE)
            return json_response({"tenant_id": principal.tenant_id, "game_id": game_id})

        app.router.routes.append(Route("/games/{game_id}", game, methods=["GET"]))
        try:
            yield
        finally:
            await pool.close()

    with TestClient(Starlette(lifespan=lifespan, exception_handlers=refusals())) as client:
        yield client


def test_the_callers_game_resolves_to_the_tenant_and_game(game_app: TestClient, users: Users) -> None:
    answer = game_app.get(f"/games/{users.game_id}", headers=users.auth(SCOPE))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tenant_id": str(users.tenant_id), "game_id": str(users.game_id)}


def test_another_tenants_game_is_not_found(game_app: TestClient, users: Users) -> None:
    _, foreign_game, _, _ = add_tenant(users.database_url)
    for game in (foreign_game, uuid.uuid4()):
        answer = game_app.get(f"/games/{game}", headers=users.auth(SCOPE))
        assert (answer.status_code, answer.json()) == (404, {"error": f"no game {game} in this tenant"})
    not_uuid = game_app.get("/games/level-1", headers=users.auth(SCOPE))
    assert (not_uuid.status_code, not_uuid.json()) == (404, {"error": "no such game: 'level-1' is not a UUID"})


def test_the_token_and_scope_are_checked_before_the_game(game_app: TestClient, users: Users) -> None:
    _, foreign_game, _, _ = add_tenant(users.database_url)
    assert game_app.get(f"/games/{foreign_game}").status_code == 401
    wrong_scope = game_app.get(f"/games/{foreign_game}", headers=users.auth("admin"))
    assert wrong_scope.status_code == 403
    assert wrong_scope.headers["www-authenticate"] == f'Bearer error="insufficient_scope", scope="{SCOPE}"'


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/v1/games/{game}/players", "players:read"),
    ("GET", "/v1/games/{game}/players/hero", "players:read"),
    ("PUT", "/v1/games/{game}/players/hero", "players:write"),
    ("PATCH", "/v1/games/{game}/players/hero", "players:write"),
    ("DELETE", "/v1/games/{game}/players/hero", "gdpr:erase"),
    ("GET", "/v1/games/{game}/players/hero/export", "players:read"),
    ("GET", "/v1/admin/games/{game}/write-keys", "admin"),
    ("POST", "/v1/admin/games/{game}/write-keys", "admin"),
])
def test_every_users_route_refuses_another_tenants_game(users: Users, method: str, path: str, scope: str) -> None:
    _, foreign_game, _, _ = add_tenant(users.database_url)
    body = {"traits": {"level": 1}} if method in ("PUT", "PATCH") else {} if method == "POST" else None
    answer = users.http.request(method, path.format(game=foreign_game), json=body, headers=users.auth(scope))
    assert (answer.status_code, answer.json()) == (404, {"error": f"no game {foreign_game} in this tenant"})
    assert users.sql("SELECT count(*) FROM players WHERE game_id = %s", (foreign_game,)) == [(0,)]
    assert users.sql("SELECT count(*) FROM write_keys WHERE game_id = %s", (foreign_game,)) == [(0,)]
    assert users.sql("SELECT count(*) FROM erasures WHERE game_id = %s", (foreign_game,)) == [(0,)]
