"""`/v1/admin/retention` served beside users on one host: the tenant comes from the token, bad
policies get a 4xx naming the field, every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.migrations import upgrade
from gamemetrics.settings import Settings
from tests.integration.users_fixtures import Users, add_tenant


@pytest.fixture
def host(settings: Settings, database_url: str) -> Iterator[Users]:
    upgrade(database_url)
    tenant, game, client_id, secret = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users", "retention"])) as http:
        yield Users(http, settings, database_url, tenant, game, client_id, secret)


def test_defaults_then_tenant_and_game_policies(host: Users) -> None:
    admin = host.auth("admin")
    shown = host.http.get("/v1/admin/retention", headers=admin).json()
    assert shown == {"tenant_id": str(host.tenant_id), "events_online_days": 90, "archive_days": 730,
                     "dead_letter_days": 30, "notification_days": 180, "games": []}
    put = host.http.put("/v1/admin/retention", json={"events_online_days": 60}, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["events_online_days"] == 60 and put.json()["archive_days"] == 730
    game = host.http.put("/v1/admin/retention", json={"game_id": str(host.game_id), "archive_days": 365},
                         headers=admin)
    assert game.status_code == 200 and game.json()["events_online_days"] == 60  # from the tenant's
    shown = host.http.get("/v1/admin/retention", headers=admin).json()
    assert shown["events_online_days"] == 60
    assert shown["games"] == [{"game_id": str(host.game_id), "events_online_days": 60, "archive_days": 365,
                               "dead_letter_days": 30, "notification_days": 180}]
    # The users service still owns the rest of /v1/admin.
    assert host.http.get("/v1/admin/tenant", headers=admin).status_code == 200
    actions = host.sql("SELECT action, subject FROM audit_log WHERE action = 'retention.policy_set' ORDER BY seq")
    assert actions == [("retention.policy_set", None), ("retention.policy_set", str(host.game_id))]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"events_online_days": -1}, 422, "events_online_days must be a whole number of days"),
    ({"events_online_days": 800}, 422, "archive_days (730) must be at least events_online_days (800)"),
    ({"archive_days": "long"}, 422, "archive_days must be a whole number"),
    ({"keep": 3}, 422, "unknown policy fields keep"),
    ({}, 400, "send a JSON object"),
    ({"game_id": "nope", "archive_days": 800}, 400, "game_id must be a UUID"),
    ({"game_id": str(uuid.uuid4()), "archive_days": 800}, 404, "no game"),
])
def test_bad_policies_are_refused_and_nothing_changes(host: Users, body: dict[str, object], status: int,
                                                      message: str) -> None:
    refused = host.http.put("/v1/admin/retention", json=body, headers=host.auth("admin"))
    assert refused.status_code == status, refused.text
    assert message in refused.json()["error"]
    assert host.sql("SELECT count(*) FROM retention_policies") == [(0,)]


def test_the_admin_scope_is_needed_and_tenants_stay_apart(host: Users) -> None:
    assert host.http.put("/v1/admin/retention", json={"archive_days": 800}).status_code == 401
    assert host.http.put("/v1/admin/retention", json={"archive_days": 800},
                         headers=host.auth("analytics:read")).status_code == 403
    other_tenant, other_game, client, secret = add_tenant(host.database_url)
    other = Users(host.http, host.settings, host.database_url, other_tenant, other_game, client, secret)
    # Another tenant's game is not found, and its own change lands on its own tenant.
    refused = other.http.put("/v1/admin/retention", json={"game_id": str(host.game_id), "archive_days": 900},
                             headers=other.auth("admin"))
    assert refused.status_code == 404
    assert other.http.put("/v1/admin/retention", json={"archive_days": 900},
                          headers=other.auth("admin")).status_code == 200
    assert host.sql("SELECT tenant_id FROM retention_policies") == [(other_tenant,)]
    assert host.http.get("/v1/admin/retention", headers=host.auth("admin")).json()["archive_days"] == 730
