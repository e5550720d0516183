"""Route audit: every route of every HTTP app, each method, asks for the right credential.

The table below names what each route needs; the test fails when an app has a route the table
does not know (a new route must say what it requires) or the table names a route that is gone.
Open: health, metrics and the OAuth2 discovery documents. Everything else refuses a request
without credentials (401), a bearer token without its scope (403), and lets one with its scope
through; ingest takes write keys only, never access tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack

import pytest
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gamemetrics.gateway import Owned, combined_app
from gamemetrics.services.users.clients import SCOPES
from gamemetrics.settings import Settings
from tests.integration.users_fixtures import Users

OPEN = "open"
WRITE_KEY = "write key"
CLIENT = "client credentials"
PASSWORD = "operator password"
OPERATOR = "an operator's token"
REQUIRES: dict[tuple[str, str, str], str] = {
    **{(app, path, "GET"): OPEN for app in ("ingest", "analytics", "users", "recommender")
       for path in ("/healthz", "/readyz", "/health/live", "/health/ready", "/metrics")},
    ("users", "/.well-known/jwks.json", "GET"): OPEN,
    ("users", "/.well-known/oauth-authorization-server", "GET"): OPEN,
    **{("ingest", path, "POST"): WRITE_KEY
       for path in ("/v1/events", "/v1/import", "/v1/batch", "/v1/track", "/v1/identify", "/api/v1/events")},
    ("users", "/oauth/token", "POST"): CLIENT,
    ("users", "/v1/operators/login", "POST"): PASSWORD,
    ("users", "/v1/operators/me", "GET"): OPERATOR,
    ("analytics", "/graphql", "GET"): "analytics:read",
    ("analytics", "/graphql", "POST"): "analytics:read",
    ("analytics", "/graphql", "WEBSOCKET"): "analytics:read",
    ("users", "/v1/admin/tenant", "GET"): "admin",
    ("users", "/v1/admin/games", "GET"): "admin",
    ("users", "/v1/admin/games", "POST"): "admin",
    ("users", "/v1/admin/games/{game_id}/write-keys", "GET"): "admin",
    ("users", "/v1/admin/games/{game_id}/write-keys", "POST"): "admin",
    ("users", "/v1/admin/write-keys/{key_id}", "DELETE"): "admin",
    ("users", "/v1/admin/clients", "GET"): "admin",
    ("users", "/v1/admin/clients", "POST"): "admin",
    ("users", "/v1/admin/clients/{client_id}", "DELETE"): "admin",
    ("users", "/v1/admin/audit", "GET"): "admin",
    ("users", "/v1/admin/operators", "GET"): "admin",
    ("users", "/v1/admin/operators", "POST"): "admin",
    ("users", "/v1/admin/operators/{operator_id}", "PATCH"): "admin",
    ("users", "/v1/games/{game_id}/players", "GET"): "players:read",
    ("users", "/v1/games/{game_id}/players/{player_id}", "GET"): "players:read",
    ("users", "/v1/games/{game_id}/players/{player_id}", "PUT"): "players:write",
    ("users", "/v1/games/{game_id}/players/{player_id}", "PATCH"): "players:write",
    ("users", "/v1/games/{game_id}/players/{player_id}", "DELETE"): "gdpr:erase",
    ("users", "/v1/games/{game_id}/players/{player_id}/export", "GET"): "players:read",
    ("users", "/v1/erasures/{erasure_id}", "GET"): "gdpr:erase",
    ("recommender", "/v1/games/{game_id}/items", "GET"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/items/{item_id}", "GET"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/items/{item_id}", "PUT"): "admin",
    ("recommender", "/v1/games/{game_id}/items/{item_id}", "DELETE"): "admin",
    ("recommender", "/v1/games/{game_id}/items/{item_id}/similar", "GET"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/players/{player_id}/recommendations", "GET"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/recommendations/feedback", "POST"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/recommendations/weights", "GET"): "recommendations:read",
    ("recommender", "/v1/games/{game_id}/recommendations/weights", "PUT"): "admin",
    ("recommender", "/v1/games/{game_id}/recommendations/train", "POST"): "admin",
}


@pytest.fixture
def apps(users: Users, settings: Settings, database_url: str) -> Iterator[dict[str, TestClient]]:
    with ExitStack() as stack:
        yield {
            "users": users.http,
            "ingest": stack.enter_context(TestClient(combined_app(settings, database_url, ["ingest"]))),
            "analytics": stack.enter_context(TestClient(combined_app(settings, database_url, ["analytics"]))),
            "recommender": stack.enter_context(TestClient(combined_app(settings, database_url, ["recommender"]))),
        }


def _routes(routes: Sequence[BaseRoute | Owned]) -> set[tuple[str, str]]:
    """Every (path, method) served, the routes of each service's owned prefixes included (each once)."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            found.add((route.path, "WEBSOCKET"))
        elif isinstance(route, Route):
            found |= {(route.path, m) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, Owned):
            found |= _routes(route.routes)
    return found


def _url(path: str, users: Users) -> str:
    return path.format(game_id=users.game_id, player_id="audited-player", key_id=uuid.uuid4(),
                       client_id="gmc_nobody", erasure_id=uuid.uuid4(), item_id="audited-item",
                       operator_id=uuid.uuid4())


def _call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> int:
    if url == "/graphql":
        headers = {**headers, "Accept": "application/json"}
        if method == "GET":
            return client.get(url, params={"query": "{ games { id } }"}, headers=headers).status_code
        return client.post(url, json={"query": "{ games { id } }"}, headers=headers).status_code
    if method in ("GET", "DELETE"):
        return client.request(method, url, headers=headers).status_code
    return client.request(method, url, json={}, headers=headers).status_code


def _websocket_accepted(client: TestClient, token: str | None) -> bool:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            return ws.receive_json()["type"] == "connection_ack"
    except WebSocketDisconnect:
        return False


def test_every_route_requires_the_right_credential(apps: dict[str, TestClient], users: Users) -> None:
    present = {(name, path, method) for name, client in apps.items()
               for path, method in _routes(client.app.routes)}  # type: ignore[attr-defined]
    assert present - REQUIRES.keys() == set(), "routes nobody said the credential of"
    assert REQUIRES.keys() - present == set(), "routes the audit expects but no app serves"
    every_scope = users.auth(*SCOPES)
    checked = 0
    for (name, path, method), needs in sorted(REQUIRES.items()):
        client, url = apps[name], _url(path, users)
        where = f"{method} {path} ({name}) needs {needs}"
        if method == "WEBSOCKET":
            assert not _websocket_accepted(client, None), where
            assert not _websocket_accepted(client, users.token(*(SCOPES - {needs}))), where
            assert _websocket_accepted(client, users.token(needs)), where
        elif needs == OPEN:
            assert _call(client, method, url, {}) == 200, where
        elif needs == WRITE_KEY:
            assert _call(client, method, url, {}) == 401, where
            assert _call(client, method, url, every_scope) == 401, f"{where}: an access token is no write key"
        elif needs == CLIENT:
            assert _call(client, method, url, {}) in (400, 401), where
            assert client.post(url, data={"grant_type": "client_credentials"}).status_code == 401, where
            assert client.post(url, data={"grant_type": "client_credentials"},
                               headers=every_scope).status_code == 401, f"{where}: a token is no client secret"
        elif needs == PASSWORD:
            assert client.post(url, json={"email": "nobody@studio.example", "password": "wrong password!"}
                               ).status_code == 401, where
            assert _call(client, method, url, every_scope) in (400, 401), where
        elif needs == OPERATOR:
            assert _call(client, method, url, {}) == 401, where
            assert _call(client, method, url, every_scope) == 403, f"{where}: a client's token is no operator's"
        else:
            assert _call(client, method, url, {}) == 401, where
            assert _call(client, method, url, users.auth(*(SCOPES - {needs}))) == 403, where
            assert _call(client, method, url, users.auth(needs)) not in (401, 403), where
        checked += 1
    assert checked == len(REQUIRES)
