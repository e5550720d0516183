"""A users service on a fresh database, served in process, with a tenant, a game and a client
that may ask for every scope."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.migrations import upgrade
from gamemetrics.services.users.clients import SCOPES, secret_digest
from gamemetrics.settings import Settings


@dataclass
class Users:
    http: TestClient
    settings: Settings
    database_url: str
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    client_id: str
    client_secret: str
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, *scopes: str) -> str:
        """An access token from /oauth/token with these scopes (cached per scope set)."""
        wanted = " ".join(sorted(scopes))
        if wanted not in self._tokens:
            response = self.http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": wanted},
                                      auth=(self.client_id, self.client_secret))
            assert response.status_code == 200, response.text
            self._tokens[wanted] = response.json()["access_token"]
        return self._tokens[wanted]

    def auth(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def add_tenant(database_url: str, scopes: frozenset[str] = SCOPES) -> tuple[uuid.UUID, uuid.UUID, str, str]:
    """A tenant, a game and a client of it: (tenant, game, client id, client secret)."""
    tenant, game = uuid.uuid4(), uuid.uuid4()
    client_id, secret = f"gmc_test{uuid.uuid4().hex[:8]}", f"gmcs_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'studio')", (tenant,))
        conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'game')", (game, tenant))
        conn.execute(
            "INSERT INTO oauth_clients (client_id, tenant_id, name, secret_hash, scopes) VALUES (%s, %s, 't', %s, %s)",
            (client_id, tenant, secret_digest(secret), sorted(scopes)),
        )
    return tenant, game, client_id, secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def users_service(settings: Settings, database_url: str) -> Iterator[Users]:
    upgrade(database_url)
    tenant, game, client_id, secret = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users"])) as http:
        yield Users(http, settings, database_url, tenant, game, client_id, secret)


@pytest.fixture
def users(settings: Settings, database_url: str) -> Iterator[Users]:
    yield from users_service(settings, database_url)
