"""A player's export (the users service's route) gives their events that now live only in the
archive, once each, beside the online ones; a damaged archive file refuses the export by name."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from starlette.testclient import TestClient

from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.gateway import combined_app
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.runtime import Platform
from gamemetrics.services.retention.archiver import Archiver
from gamemetrics.services.retention.restore import Restorer
from gamemetrics.services.users.clients import secret_digest
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import day_of, history, store_history


def client_of(database_url: str, tenant_id: uuid.UUID) -> tuple[str, str]:
    client_id, secret = f"gmc_test{uuid.uuid4().hex[:8]}", f"gmcs_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO oauth_clients (client_id, tenant_id, name, secret_hash, scopes)"
                     " VALUES (%s, %s, 't', %s, %s)", (client_id, tenant_id, secret_digest(secret), ["players:read"]))
    return client_id, secret


async def test_an_export_holds_the_players_archived_events_once(
        platform: Platform, settings: Settings, database_url: str, write_key: CreatedKey) -> None:
    sent = history([120, 100, 10], players=3, per_player=4)
    await store_history(platform, settings, write_key, sent)
    objects = local_objects(settings.data_dir / "objects")  # where the platform's services keep objects
    secret = platform_secret(settings)
    report = await Archiver(platform.pool, objects, AuditLog(secret), part_rows=5, zstd_level=3).run()
    assert [d.rows_deleted for d in report.days] == [12, 12]
    theirs = {e["event_id"]: e for e in sent if e["player_id"] == "player-1"}
    client_id, client_secret = client_of(database_url, write_key.tenant_id)
    path = f"/v1/games/{write_key.game_id}/players/player-1/export"

    with TestClient(combined_app(settings, database_url, ["users"])) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "players:read"},
                          auth=(client_id, client_secret)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

        def exported() -> list[dict[str, object]]:
            response = http.get(path, headers=auth)
            assert response.status_code == 200, response.text
            events: list[dict[str, object]] = response.json()["events"]
            return events

        events = exported()
        assert sorted(str(e["event_id"]) for e in events) == sorted(theirs)  # 8 archived, 4 online
        assert len(events) == 12
        for event in events:
            assert event["properties"] == theirs[str(event["event_id"])]["properties"]
            assert event["player_id"] == "player-1" and event["event_type"] in ("level_start", "purchase")
        assert [e["event_time"] for e in events] == sorted(e["event_time"] for e in events)  # type: ignore[type-var]

        # Restored days are online and still archived: each event is given once.
        restorer = Restorer(platform.pool, objects, Tombstones(secret), AuditLog(secret), "test")
        assert [d.restored for d in await restorer.restore(write_key.game_id, day_of(130), day_of(90))] == [12, 12]
        assert sorted(str(e["event_id"]) for e in exported()) == sorted(theirs)

        # An archive file that does not match its manifest refuses the export, naming it.
        damaged = next(info.key for info in await objects.list("events/") if info.key.endswith(".parquet"))
        file = Path(settings.data_dir / "objects" / damaged)
        file.write_bytes(file.read_bytes()[:-8] + b"\0" * 8)
        refused = http.get(path, headers=auth)
        assert refused.status_code == 503 and damaged in refused.json()["error"], refused.text
