"""Ingest's refusals reach `ingest_refusals` per game and reason, and a tenant reads only its own."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.settings import Settings
from gamemetrics.tenancy.keys import key_digest, new_key_secret
from tests.e2e.conftest import new_event
from tests.integration.users_fixtures import add_tenant


def _key(database_url: str, tenant: uuid.UUID, game: uuid.UUID) -> tuple[uuid.UUID, str]:
    key_id, secret = uuid.uuid4(), new_key_secret("test")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO write_keys (key_id, tenant_id, game_id, key_hash, key_prefix) VALUES (%s, %s, %s,"
                     " %s, %s)", (key_id, tenant, game, key_digest(secret), secret[:12]))
    return key_id, secret


def _rows(database_url: str) -> dict[tuple[uuid.UUID, str], tuple[int, int]]:
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT game_id, reason, sum(events), sum(requests) FROM ingest_refusals"
                             " GROUP BY game_id, reason").fetchall()
    return {(g, r): (int(e), int(n)) for g, r, e, n in found}


Daily = list[tuple[str, str, int, int]]
REFUSALS = """query ($g: ID!, $from: Date!, $to: Date!) {
  ingestRefusals(gameId: $g, from: $from, to: $to) { date reason events requests }
}"""


def _read_as(database_url: str, settings: Settings, client: tuple[str, str], game: uuid.UUID) -> Daily | str:
    """The game's refusals of yesterday and today as the analytics API answers a client's token, or its error code."""
    today = datetime.now(UTC).date()
    with TestClient(combined_app(settings, database_url, ["users", "analytics"])) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "analytics:read"},
                          auth=client).json()["access_token"]
        answer = http.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
            "query": REFUSALS, "variables": {"g": str(game), "from": (today - timedelta(days=1)).isoformat(),
                                             "to": today.isoformat()}}).json()
    if answer.get("errors"):
        return str(answer["errors"][0]["extensions"]["code"])
    return [(r["date"], r["reason"], r["events"], r["requests"]) for r in answer["data"]["ingestRefusals"]]


def test_refusals_are_counted_by_game_and_reason_and_stored_at_the_latest_when_ingest_stops(
        settings: Settings, database_url: str) -> None:
    tenant, game, *client = add_tenant(database_url)
    other_tenant, other_game, *other_client = add_tenant(database_url)
    key_id, secret = _key(database_url, tenant, game)
    _, other_secret = _key(database_url, other_tenant, other_game)
    # A flush interval longer than the test: the counts can only be there from the flush at stop.
    own = settings.updated(ingest={"max_batch_events": 5, "refusal_flush_seconds": 3600, "key_cache_seconds": 0.05})
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with TestClient(combined_app(own, database_url, ["ingest"])) as http:
        def post(key: str, body: object, **headers: str) -> int:
            return http.post("/v1/events", json=body, headers={"Authorization": f"Bearer {key}", **headers}).status_code

        batch = [new_event(), new_event("teleport"), new_event(timestamp=future), new_event(timestamp=future)]
        assert post(secret, {"events": batch}) == 200
        assert post(secret, {"events": [new_event() for _ in range(6)]}) == 413
        assert http.post("/v1/events", content=b"{}", headers={"Authorization": f"Bearer {secret}",
                                                               "Content-Type": "text/csv"}).status_code == 415
        assert post(other_secret, {"events": "not a list"}) == 400
        assert post("gm_test_never-issued", {"events": [new_event()]}) == 401
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE write_keys SET revoked_at = now() WHERE key_id = %s", (key_id,))
        time.sleep(0.1)  # past the resolved key's time to live
        assert post(secret, {"events": [new_event()]}) == 401
        assert _rows(database_url) == {}, "nothing is written per refusal"
    assert _rows(database_url) == {
        (game, "unknown_event_type"): (1, 1), (game, "timestamp_in_future"): (2, 1), (game, "too_large"): (6, 1),
        (game, "malformed_request"): (0, 1), (game, "revoked_key"): (0, 1), (other_game, "malformed_request"): (0, 1)}
    mine = _read_as(database_url, settings, (client[0], client[1]), game)
    assert not isinstance(mine, str), mine
    assert sorted((r, e, n) for _, r, e, n in mine) == [
        ("malformed_request", 0, 1), ("revoked_key", 0, 1), ("timestamp_in_future", 2, 1), ("too_large", 6, 1),
        ("unknown_event_type", 1, 1)]
    assert _read_as(database_url, settings, (other_client[0], other_client[1]), game) == "NOT_FOUND", \
        "another tenant's game is not found"
    # The second wall: under the analytics role, SQL without a tenant filter sees the transaction's tenant only.
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT set_config('role', %s, true), set_config('gamemetrics.tenant_id', %s, true)",
                     (settings.analytics.db_role, str(other_tenant)))
        seen = conn.execute("SELECT game_id, reason FROM ingest_refusals").fetchall()
        assert seen == [(other_game, "malformed_request")]
        conn.rollback()
        forced = conn.execute("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class"
                              " WHERE relname = 'ingest_refusals'").fetchone()
        assert forced == (True,)


def test_the_worker_adds_to_the_same_rows_every_interval(settings: Settings, database_url: str) -> None:
    tenant, game, _, _ = add_tenant(database_url)
    _, secret = _key(database_url, tenant, game)
    own = settings.updated(ingest={"max_batch_events": 2, "refusal_flush_seconds": 0.1})
    with TestClient(combined_app(own, database_url, ["ingest"])) as http:
        for expected in (1, 2):
            assert http.post("/v1/events", json={"events": [new_event()] * 3},
                             headers={"Authorization": f"Bearer {secret}"}).status_code == 413
            deadline = time.monotonic() + 10
            while _rows(database_url).get((game, "too_large")) != (3 * expected, expected):
                assert time.monotonic() < deadline, _rows(database_url)
                time.sleep(0.05)
