"""The analytics API's data-quality fields (ingestRefusals, deadLetterReasons, deadLetters) on the
real PostgreSQL: each tenant reads its own game's rows, and another tenant's game is NOT_FOUND."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.settings import Settings
from tests.integration.users_fixtures import Users, add_tenant

QUALITY = """query ($g: ID!, $from: Date!, $to: Date!) {
  ingestRefusals(gameId: $g, from: $from, to: $to) { date reason events requests }
  deadLetterReasons(gameId: $g) { reason letters replayed lastAt }
}"""
LETTERS = """query ($g: ID!, $reason: String!, $limit: Int) {
  deadLetters(gameId: $g, reason: $reason, limit: $limit) {
    letterId eventId reason createdAt payload replayedAt replayedBy
  }
}"""


@pytest.fixture
def analytics(settings: Settings, database_url: str) -> Iterator[TestClient]:
    with TestClient(combined_app(settings, database_url, ["analytics"])) as http:
        yield http


def _ask(http: TestClient, token: str, query: str, variables: dict[str, Any], status: int = 200) -> dict[str, Any]:
    answer = http.post("/graphql", json={"query": query, "variables": variables},
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def _letter(users: Users, tenant: uuid.UUID, game: uuid.UUID, reason: str, payload: bytes,
            replayed_by: str | None = None) -> int:
    offset = uuid.uuid4().int % 2**62
    [(letter_id,)] = users.sql(
        "INSERT INTO dead_letters (tenant_id, game_id, event_id, source_topic, source_partition, source_offset,"
        " reason, payload) VALUES (%s, %s, %s, 'player.events.raw', 0, %s, %s, %s) RETURNING id",
        (tenant, game, str(uuid.uuid4()), offset, reason, payload))
    if replayed_by:
        users.sql("INSERT INTO dead_letter_replays (letter_id, tenant_id, replayed_by) VALUES (%s, %s, %s)",
                  (letter_id, tenant, replayed_by))
    return int(letter_id)


def test_refusals_and_dead_letters_are_read_per_tenant(users: Users, analytics: TestClient,
                                                        database_url: str) -> None:
    other_tenant, other_game, other_client, other_secret = add_tenant(database_url)
    mine, theirs = users.token("analytics:read"), users.http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "analytics:read"},
        auth=(other_client, other_secret)).json()["access_token"]
    t, g = users.tenant_id, users.game_id
    today = datetime.now(UTC).date()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [(t, g, hour, "rate_limited", 40, 2), (t, g, hour - timedelta(hours=1), "rate_limited", 10, 1),
            (t, g, hour - timedelta(days=1), "too_large", 6, 1), (t, g, hour - timedelta(days=9), "too_large", 1, 1),
            (other_tenant, other_game, hour, "revoked_key", 0, 5)]
    for row in rows:
        users.sql("INSERT INTO ingest_refusals (tenant_id, game_id, hour, reason, events, requests)"
                  " VALUES (%s, %s, %s, %s, %s, %s)", row)
    expected: dict[tuple[str, str], list[int]] = {}
    for tenant, _, at, reason, events, requests in rows:
        if tenant == t and at.date() >= today - timedelta(days=6):  # the 9-day-old row is outside the week
            total = expected.setdefault((at.date().isoformat(), reason), [0, 0])
            total[0] += events
            total[1] += requests
    first = _letter(users, t, g, "timestamp 2026-01-01T00:00:00+00:00 is older than 3600 s", b'{"a": 1}')
    second = _letter(users, t, g, "timestamp 2026-02-02T10:00:00Z is older than 7200 s", b"\xff not utf-8",
                     replayed_by="operator:x")
    _letter(users, t, g, "unknown event type 'teleport'", b"{}")
    _letter(users, other_tenant, other_game, "timestamp 2026-01-01T00:00:00Z is older than 1 s", b"secret")

    week = {"g": str(g), "from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    data = _ask(analytics, mine, QUALITY, week)["data"]
    assert [(r["date"], r["reason"], r["events"], r["requests"]) for r in data["ingestRefusals"]] == [
        (day, reason, events, requests) for (day, reason), (events, requests) in sorted(expected.items())]
    assert len(expected) >= 2
    reasons = {r["reason"]: (r["letters"], r["replayed"]) for r in data["deadLetterReasons"]}
    assert reasons == {"timestamp <time> is older than N s": (2, 1), "unknown event type 'teleport'": (1, 0)}
    letters = _ask(analytics, mine, LETTERS, {"g": str(g), "reason": "timestamp <time> is older than N s",
                                              "limit": 10})["data"]["deadLetters"]
    assert [x["letterId"] for x in letters] == [second, first], "newest first"
    assert json.loads(letters[1]["payload"]) == {"a": 1} and letters[1]["replayedAt"] is None
    assert letters[0]["payload"].endswith(" not utf-8") and letters[0]["replayedBy"] == "operator:x"

    # A replay and a flush of ingest's counts move no data version: the same request sees both at once.
    users.sql("INSERT INTO dead_letter_replays (letter_id, tenant_id, replayed_by) VALUES (%s, %s, 'operator:y')",
              (first, t))
    users.sql("UPDATE ingest_refusals SET requests = requests + 7 WHERE tenant_id = %s AND hour = %s"
              " AND reason = 'rate_limited'", (t, hour))
    again = _ask(analytics, mine, QUALITY, week)["data"]
    assert {r["reason"]: r["replayed"] for r in again["deadLetterReasons"]}["timestamp <time> is older than N s"] == 2
    today_limited = [r for r in again["ingestRefusals"] if r["reason"] == "rate_limited"
                     and r["date"] == hour.date().isoformat()]
    assert today_limited[0]["requests"] == expected[(hour.date().isoformat(), "rate_limited")][1] + 7

    # Tenant B asking for tenant A's game: NOT_FOUND for every field, none of A's rows.
    for query, variables in ((QUALITY, week), (LETTERS, {"g": str(g), "reason": "timestamp <time> is older than N s"})):
        answer = _ask(analytics, theirs, query, variables)
        assert answer["data"] is None or not any(answer["data"].values()), answer
        assert {e["extensions"]["code"] for e in answer["errors"]} == {"NOT_FOUND"}, answer
    own = _ask(analytics, theirs, QUALITY, {**week, "g": str(other_game)})["data"]
    assert [(r["reason"], r["requests"]) for r in own["ingestRefusals"]] == [("revoked_key", 5)]
    kind = "timestamp <time> is older than N s"
    assert [(r["reason"], r["letters"]) for r in own["deadLetterReasons"]] == [(kind, 1)]


def test_bad_arguments_are_refused_with_a_reason(users: Users, analytics: TestClient) -> None:
    token, g = users.token("analytics:read"), str(users.game_id)
    today = datetime.now(UTC).date()
    cases = [
        (QUALITY, {"g": g, "from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()}),
        (QUALITY, {"g": g, "from": (today - timedelta(days=3650)).isoformat(), "to": today.isoformat()}),
        (LETTERS, {"g": g, "reason": "x", "limit": 0}),
        (LETTERS, {"g": "not-a-uuid", "reason": "x"}),
    ]
    for query, variables in cases:
        answer = _ask(analytics, token, query, variables)
        assert {e["extensions"]["code"] for e in answer["errors"]} == {"BAD_USER_INPUT"}, (variables, answer)
    refused = _ask(analytics, users.token("players:read"), LETTERS, {"g": g, "reason": "x"}, status=403)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
