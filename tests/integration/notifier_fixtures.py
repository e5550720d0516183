"""The users and notifier services in one app on a fresh database (as `gamemetrics up` serves
them), with fast retry settings, a tenant, a game, a client and functions to make players and
templates and wait for deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.migrations import upgrade
from gamemetrics.settings import BusSettings, NotifierSettings, Settings
from tests.integration.users_fixtures import Users, add_tenant

SEND = "notifications:send"
PATIENCE_S = 20.0
WELCOME: dict[str, Any] = {
    "category": "lifecycle",
    "content": {
        "email": {"subject": "Welcome, {{ name }}", "body": "You reached level {{ level }}.\n"},
        "in_app": {"title": "Level {{ level }}", "body": "Well played, {{ name }}!"},
        "sms": {"body": "GG {{ name }}"},
    },
    "locales": {"fi": {"email": {"subject": "Tervetuloa, {{ name }}"}}},
    "sample": {"name": "Ada", "level": 3},
}


def fast_settings(tmp_path: Path, database_url: str, **notifier: Any) -> Settings:
    """Settings whose retries and polls take milliseconds, so the fault tests stay quick."""
    own = {"notify_backoff_initial_seconds": 0.05, "notify_backoff_cap_seconds": 0.2, "notify_poll_seconds": 0.05,
           "notify_lease_seconds": 5.0, "notify_schedule_seconds": 0.2, "notify_send_timeout_seconds": 3.0, **notifier}
    return Settings(data_dir=tmp_path, database_url=database_url, bus=BusSettings(partitions=4),
                    notifier=NotifierSettings(**own))


class Notifier(Users):
    """The users service's test client, plus the notifier's calls."""

    def player(self, player_id: str, **traits: Any) -> str:
        response = self.http.put(f"/v1/games/{self.game_id}/players/{player_id}", json={"traits": traits},
                                 headers=self.auth("players:write"))
        assert response.status_code in (200, 201), response.text
        return player_id

    def template(self, name: str, body: dict[str, Any] | None = None) -> None:
        response = self.http.put(f"/v1/games/{self.game_id}/notification-templates/{name}", json=body or WELCOME,
                                 headers=self.auth(SEND))
        assert response.status_code in (200, 201), response.text

    def send(self, player_id: str, template: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"game_id": str(self.game_id), "player_id": player_id, "template": template,
                "data": {"name": "Ada", "level": 7}, "channels": ["in_app"], **fields}
        headers = {**self.auth(SEND), **({"Idempotency-Key": key} if key else {})}
        response = self.http.post("/v1/notifications", json=body, headers=headers)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def status(self, notification_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/notifications/{notification_id}", headers=self.auth(SEND))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def settled(self, notification_id: str) -> dict[str, Any]:
        """The notification once no channel is queued any more (the worker runs beside the app)."""
        deadline = time.monotonic() + PATIENCE_S
        while True:
            status = self.status(notification_id)
            if all(c["state"] not in ("queued", "deferred") for c in status["channels"].values()):
                return status
            assert time.monotonic() < deadline, f"still not settled: {status}"
            time.sleep(0.05)


@pytest.fixture
def notifier(tmp_path: Path, database_url: str) -> Iterator[Notifier]:
    settings = fast_settings(tmp_path, database_url)
    upgrade(database_url)
    tenant, game, client_id, secret = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users", "notifier"])) as http:
        yield Notifier(http, settings, database_url, tenant, game, client_id, secret)


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"
