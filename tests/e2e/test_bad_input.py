"""Bad input against a running `gamemetrics up`: every kind gets its documented answer (a 4xx, or a
rejection naming the event's index and why) or a dead letter with a reason; the good events sent
beside it are stored; the processor never stalls on it; and no request ever gets a 500."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from segment.analytics import Client

from gamemetrics.adapters.pglog.batches import decode_batch
from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.events.schema import EVENT_TYPES
from gamemetrics.ports.bus import EVENTS_DLQ, RAW_EVENTS, Message
from gamemetrics.runtime import connect
from gamemetrics.settings import BusSettings, Settings
from tests.e2e.conftest import (
    BUS_PARTITIONS,
    KEY_RATE_BURST_EVENTS,
    MAX_INFLATED_BYTES,
    RunningPlatform,
    new_event,
)

NATIVE, IMPORT, BATCH, TRACK, IDENTIFY, LEGACY = (
    "/v1/events", "/v1/import", "/v1/batch", "/v1/track", "/v1/identify", "/api/v1/events",
)
ALL_PATHS = (NATIVE, IMPORT, BATCH, TRACK, IDENTIFY, LEGACY)


def _player(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def _ahead(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _nested(depth: int) -> dict[str, Any]:
    """Properties whose nesting depth (a flat object is 1) is exactly `depth`."""
    value: Any = 1
    for _ in range(depth - 1):
        value = {"d": value}
    return {"deep": value}


@pytest.fixture
def nothing_appended(running: RunningPlatform) -> Iterator[None]:
    """The test's requests must all be refused whole: the raw topic does not grow."""
    before = running.raw_end()
    yield
    assert running.raw_end() == before, "a refused request appended events to player.events.raw"


# ---------------------------------------------------------------- requests refused whole

_DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("body", [
    b"{not json", b"", b"[1, 2]", b'"events"', b"null", b"\xff\xfe{}", b'{"events": [' + _DEEP + b"]}",
    b'{"batch": ' + _DEEP + b"}", b'{"events": [{"a": "\\ud800"}]}',
], ids=["malformed", "empty", "array", "string", "null", "not-utf8", "deep-events", "deep-batch",
        "lone-surrogate"])
def test_an_unreadable_body_gets_400_and_appends_nothing(
    running: RunningPlatform, nothing_appended: None, path: str, body: bytes
) -> None:
    response = running.post(path, content=body, key=running.import_key)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


@pytest.mark.parametrize(("path", "body", "says"), [
    (NATIVE, {"events": 5}, "$.events"),
    (NATIVE, {"events": {"0": {}}}, "$.events"),
    (NATIVE, {"batch": []}, "events"),
    (BATCH, {"batch": {"type": "track"}}, "batch"),
    (BATCH, {"events": []}, "batch"),
    (BATCH, {"batch": [], "sentAt": "last tuesday"}, "sentAt"),
    (LEGACY, {"game_id": "g", "event_type": "login"}, "player_id"),
    (LEGACY, {"player_id": "p", "event_type": "login"}, "game_id"),
    (LEGACY, {"player_id": "p", "game_id": "not-a-uuid", "event_type": "login"}, "UUID"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "teleport"}, "unknown event_type"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": ["login"]}, "event_type"),
    (LEGACY, {"player_id": ["p"], "game_id": "$GAME", "event_type": "login"}, "player_id"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "login", "data": [1]}, "data"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "login", "timestamp": 17}, "timestamp"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "login", "timestamp": "2020-13-45"},
     "timestamp"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "login", "timestamp": _ahead(days=3)},
     "future"),
    (LEGACY, {"player_id": "p", "game_id": "$GAME", "event_type": "purchase", "data": {"amount": "lots"}},
     "price"),
])
def test_a_body_of_the_wrong_shape_gets_400_saying_what_is_wrong(
    running: RunningPlatform, nothing_appended: None, path: str, body: dict[str, Any], says: str
) -> None:
    body = json.loads(json.dumps(body).replace("$GAME", running.game_id))
    response = running.post(path, body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert says in answer.get("error", answer.get("detail", "")), answer


@pytest.mark.parametrize("path", ALL_PATHS)
def test_unknown_revoked_or_missing_keys_get_401(running: RunningPlatform, nothing_appended: None, path: str) -> None:
    body = {"events": [new_event()]}
    unknown = "gm_production_" + "x" * 43
    assert running.post(path, body, key="").status_code == 401
    assert running.post(path, body, key=unknown).status_code == 401
    assert running.post(path, body, key=unknown, basic=True).status_code == 401
    assert running.post(path, body, headers={"Authorization": "Basic %%%"}).status_code == 401
    assert running.post(path, body, headers={"Authorization": "Token " + running.live_key}).status_code == 401
    refused = running.post(path, body, key=unknown)
    assert refused.json() == {"error": "unknown or revoked write key"}


def test_a_revoked_key_is_refused_once_revocation_reaches_ingest(running: RunningPlatform) -> None:
    key = running.doomed_key
    assert running.send([new_event()], key=key["write_key"])["accepted"] == 1
    assert running.cli("admin", "revoke-write-key", key["key_id"]) == {"key_id": key["key_id"], "revoked": True}
    running.wait_for(
        lambda: running.post(NATIVE, {"events": []}, key=key["write_key"]).status_code == 401,
        "ingest to refuse the revoked key",
    )
    before = running.raw_end()
    refused = running.post(NATIVE, {"events": [new_event()]}, key=key["write_key"])
    assert refused.status_code == 401 and refused.json()["error"] == "unknown or revoked write key"
    assert running.raw_end() == before


def test_import_is_refused_to_a_key_without_allow_import(running: RunningPlatform, nothing_appended: None) -> None:
    response = running.post(IMPORT, {"events": [new_event(timestamp=_ago(days=30))]}, key=running.live_key)
    assert response.status_code == 403 and "--allow-import" in response.json()["error"]


@pytest.mark.parametrize(("headers", "status"), [
    ({"Content-Type": "text/xml"}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({"Content-Type": ""}, 415),
    ({"Content-Encoding": "br"}, 415),
    ({"Content-Encoding": "deflate"}, 415),
])
def test_a_wrong_content_type_or_encoding_gets_415(
    running: RunningPlatform, nothing_appended: None, headers: dict[str, str], status: int
) -> None:
    for path in ALL_PATHS:
        response = running.post(path, {"events": [new_event()]}, key=running.import_key, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert "not supported" in response.json()["error"]


def test_text_plain_is_taken_as_json_for_beacons(running: RunningPlatform) -> None:
    event = new_event(player=_player("beacon"))
    response = running.post(NATIVE, {"events": [event]}, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert event["event_id"] in running.stored([event["event_id"]])


# ---------------------------------------------------------------- size limits and gzip

def test_a_batch_over_500_events_gets_413_and_500_are_taken(running: RunningPlatform) -> None:
    player = _player("bulk")
    before = running.raw_end()
    over = running.post(NATIVE, {"events": [new_event(player=player) for _ in range(501)]})
    assert over.status_code == 413 and "501 events; the limit is 500" in over.json()["error"]
    over_segment = running.post(BATCH, {"batch": [{"type": "track", "userId": "u", "event": "x",
                                                   "messageId": str(i)} for i in range(501)]})
    assert over_segment.status_code == 413
    assert running.raw_end() == before
    events = [new_event(player=player) for _ in range(500)]
    assert running.send(events) == {"accepted": 500, "rejected": []}
    assert len(running.stored([e["event_id"] for e in events])) == 500


def test_a_body_over_1_mib_gets_413_whether_declared_or_streamed(
    running: RunningPlatform, nothing_appended: None
) -> None:
    body = b'{"events": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    declared = running.post(NATIVE, content=body)
    assert declared.status_code == 413 and "1048576" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    streamed = running.http.post(NATIVE, content=chunks(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {running.live_key}"})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413 and "1048576" in streamed.json()["error"]


def test_a_gzip_bomb_gets_413_at_the_configured_inflated_bound(
    running: RunningPlatform, nothing_appended: None
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1024 * 1024)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()  # 64 MiB in ~64 KiB
    assert len(bomb) < 1024 * 1024
    response = running.post(NATIVE, content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert f"{MAX_INFLATED_BYTES}-byte limit" in response.json()["error"]
    just_over = gzip.compress(b'{"events": []' + b" " * MAX_INFLATED_BYTES + b"}")
    assert running.post(NATIVE, content=just_over, headers={"Content-Encoding": "gzip"}).status_code == 413


def test_a_gzip_body_may_inflate_past_the_body_limit_up_to_the_inflated_bound(running: RunningPlatform) -> None:
    events = [new_event(player=_player("gzip")) for _ in range(3)]
    padded = b'{"events": ' + json.dumps(events).encode() + b" " * (1536 * 1024) + b"}"
    assert 1024 * 1024 < len(padded) < MAX_INFLATED_BYTES
    response = running.post(NATIVE, content=gzip.compress(padded), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {"accepted": 3, "rejected": []}
    assert len(running.stored([e["event_id"] for e in events])) == 3


@pytest.mark.parametrize("body", [
    b"definitely not gzip",
    gzip.compress(b'{"events": []}')[:-6],
    gzip.compress(b'{"events": []}') + b"trailing junk",
    gzip.compress(b'{"events": [') + gzip.compress(b"]}"),
], ids=["not-gzip", "truncated", "trailing-junk", "two-members"])
def test_a_broken_gzip_body_gets_400(running: RunningPlatform, nothing_appended: None, body: bytes) -> None:
    response = running.post(NATIVE, content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400, response.text
    assert "gzip" in response.json()["error"]


# ---------------------------------------------------------------- bad events beside good ones

def _bad_events() -> list[tuple[Any, str]]:
    """(event, what the rejection must say) for every kind of bad event ingest must name."""
    base = new_event
    no_id = {k: v for k, v in base().items() if k != "event_id"}
    no_time = {k: v for k, v in base().items() if k != "timestamp"}
    no_player = {k: v for k, v in base().items() if k != "player_id"}
    return [
        (base(player_id=42), "$.player_id"),
        (base(player_id=""), "$.player_id"),
        (base(player_id="p" * 257), "$.player_id"),
        (base(event_id="not-a-uuid"), "$.event_id"),
        (no_id, "event_id"),
        (no_time, "timestamp"),
        (no_player, "player_id"),
        (base(timestamp="yesterday"), "$.timestamp"),
        (base(timestamp="2026-01-01T10:00:00"), "timezone"),
        (base(event_type="level_up"), "unknown event_type 'level_up'"),
        (base(event_type=7), "$.event_type"),
        (base("custom"), "needs a `name`"),
        (base("purchase", properties={"item_id": "gem", "price": 1}), "currency"),
        (base("purchase", properties={"item_id": "gem", "price": "cheap", "currency": "USD"}), "price"),
        (base("purchase", properties={"item_id": "gem", "price": -1, "currency": "USD"}), "price"),
        (base("purchase", properties={"item_id": "gem", "price": 1, "currency": "EURO"}), "currency"),
        (base("purchase", properties={"item_id": "gem", "price": 1, "currency": "USD", "quantity": 0}),
         "quantity"),
        (base("level_start", properties={"level": -1}), "level"),
        (base("achievement_unlocked", properties={}), "achievement_id"),
        (base(properties=[1, 2]), "$.properties"),
        (base(context={"platform": 5}), "context"),
        (base(context="ios"), "$.context"),
        (base(session_id=""), "$.session_id"),
        (7, "object"),
        (None, "object"),
        ("event", "object"),
        ([base()], "object"),
        (base(timestamp=_ahead(days=1)), "in the future"),
        (base(timestamp=_ahead(minutes=11)), "in the future"),
        (base(timestamp=_ago(days=8)), "/v1/import"),
        (base(properties={"blob": "x" * 40_000}), "the limit is 32768"),
        (base(properties=_nested(9)), "nested 9 levels deep; the limit is 8"),
        (base(context={"a": _nested(9)}), "nested"),
        (base(player_id="nul\u0000player"), "NUL"),
        (base(properties={"note": "a\u0000b"}), "NUL"),
        (base(properties={"key\u0000": 1}), "NUL"),
        (base(session_id="s\u0000"), "NUL"),
    ]


def _good_events(player: str) -> list[dict[str, Any]]:
    return [
        new_event(player=player),
        new_event("custom", player, name="unknown_fields", properties={"extra": {"kept": [1, "two"]}},
                  unknown_top_level="ignored", context={"platform": "steam", "custom_field": "kept"}),
        new_event("level_complete", player, properties={"level": "boss-1", **_nested(8)}),
        new_event("achievement_unlocked", player, timestamp=_ahead(minutes=5), properties={"achievement_id": "ok"}),
        new_event("item_used", player, timestamp=_ago(days=6), properties={"item_id": "potion"}),
        new_event("custom", player, name="unicode ✓", properties={"msg": "héllo 世界 🎮 مرحبا", "nul": "\\u0000"}),
        new_event(player="p" * 256),
    ]


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def test_each_bad_event_is_named_by_index_and_the_good_ones_beside_it_are_stored(running: RunningPlatform) -> None:
    player = _player("mixed")
    goods = _good_events(player)
    bads = _bad_events()
    not_utf8 = b'{"event_id": "' + str(uuid.uuid4()).encode() + b'", "event_type": "session_start",' \
        b' "player_id": "caf\xe9", "timestamp": "' + datetime.now(UTC).isoformat().encode() + b'"}'
    items: list[bytes] = []
    expected: dict[int, str] = {}
    for i in range(max(len(goods), len(bads))):
        if i < len(bads):
            expected[len(items)] = bads[i][1]
            items.append(json.dumps(bads[i][0]).encode())
        if i < len(goods):
            items.append(json.dumps(goods[i]).encode())
    expected[len(items)] = "utf-8"
    items.append(not_utf8)
    before = running.raw_end()
    response = running.post(NATIVE, content=b'{"events": [' + b", ".join(items) + b"]}")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == len(goods)
    assert [r["index"] for r in answer["rejected"]] == sorted(expected)
    for rejection in answer["rejected"]:
        assert expected[rejection["index"]] in rejection["error"], (items[rejection["index"]][:200], rejection)
    assert running.raw_end() == before + len(goods)  # refused events never reach the bus

    stored = running.stored([e["event_id"] for e in goods])
    assert sorted(stored) == sorted(e["event_id"] for e in goods)
    kept = stored[goods[1]["event_id"]]
    assert kept["properties"] == {"extra": {"kept": [1, "two"]}}
    assert kept["context"] == {"platform": "steam", "custom_field": "kept"} and kept["platform"] == "pc"
    assert stored[goods[5]["event_id"]]["properties"] == goods[5]["properties"]
    assert stored[goods[5]["event_id"]]["event_name"] == "unicode ✓"
    bad_ids = [e["event_id"] for e, _ in bads if isinstance(e, dict) and _is_uuid(e.get("event_id"))]
    assert running.stored(bad_ids) == {} and running.dead_letters(bad_ids) == {}


def test_bad_segment_messages_are_named_and_the_good_ones_stored(running: RunningPlatform) -> None:
    user = _player("seg-mixed")
    good = [
        {"type": "track", "userId": user, "event": "Level Started", "properties": {"level": 2},
         "messageId": str(uuid.uuid4())},
        {"type": "track", "anonymousId": user, "event": "Some Custom Thing", "messageId": str(uuid.uuid4()),
         "properties": {"session_id": "sess-1", "x": 1}},
        {"type": "identify", "userId": user, "traits": {"name": "Bo"}, "messageId": str(uuid.uuid4())},
    ]
    bad: list[tuple[Any, str | None]] = [
        (5, "JSON object"),
        ({"type": "track", "event": "x", "messageId": "m1"}, "userId"),
        ({"type": "track", "userId": user, "event": "x"}, "messageId"),
        ({"type": "track", "userId": user, "messageId": "m2"}, "`event` name"),
        ({"type": "page", "userId": user, "messageId": "m3"}, "not supported"),
        ({"type": "track", "userId": user, "event": "x", "messageId": "m4", "timestamp": "noon"}, "RFC 3339"),
        ({"type": "track", "userId": user, "event": "x", "messageId": "m5", "timestamp": _ahead(days=2)},
         "in the future"),
        ({"type": "track", "userId": user, "event": "x", "messageId": "m6", "timestamp": "0001-01-01T00:00:00Z",
          "sentAt": "9999-12-31T00:00:00Z"}, "timestamp"),
        # Properties that are not an object are ignored, as Segment does: these two are taken.
        ({"type": "track", "userId": user, "event": "x", "messageId": str(uuid.uuid4()), "properties": [1]}, None),
        ({"type": "track", "userId": user, "event": "x", "messageId": str(uuid.uuid4()), "properties": 5}, None),
        ({"type": "track", "userId": user, "event": "Order Completed", "messageId": "m9",
          "properties": {"revenue": "a lot"}}, "price"),
        ({"type": "identify", "userId": user, "messageId": "m10", "traits": ["vip"]}, "traits"),
        ({"type": "track", "userId": user, "event": "x", "messageId": "m11", "properties": {"k": "\u0000"}},
         "NUL"),
    ]
    batch: list[Any] = [*good[:1], *(m for m, _ in bad), *good[1:]]
    response = running.post(BATCH, {"batch": batch}, basic=True)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["success"] is True
    taken = [m for m, says in bad if says is None]
    assert answer["accepted"] == len(good) + len(taken)
    rejected = {r["index"]: r["error"] for r in answer["rejected"]}
    assert sorted(rejected) == [i + 1 for i, (_, says) in enumerate(bad) if says is not None]
    for index, error in rejected.items():
        assert str(bad[index - 1][1]) in error, (batch[index], error)
    stored = running.stored([m["messageId"] for m in [*good, *taken]])
    assert len(stored) == len(good) + len(taken)
    assert all(stored[m["messageId"]]["properties"] == {} for m in taken)
    assert stored[good[1]["messageId"]]["session_id"] == "sess-1"


def test_duplicate_event_ids_are_stored_once_and_the_first_copy_wins(running: RunningPlatform) -> None:
    player = _player("dupes")
    event_id = str(uuid.uuid4())
    first = new_event("level_start", player, event_id=event_id, properties={"level": 1})
    again = {**first, "properties": {"level": 2}}
    assert running.send([first, again, new_event(player=player)]) == {"accepted": 3, "rejected": []}
    assert running.send([again])["accepted"] == 1  # a client retry, in a later request
    message_id = str(uuid.uuid4())
    client = Client(running.live_key, host=running.base_url, sync_mode=True, max_retries=0)
    for level in (5, 6):  # an SDK retry: the same messageId twice
        client.track(player, "Level Started", {"level": level}, message_id=message_id)

    stored = running.stored([event_id, message_id])
    assert stored[event_id]["properties"] == {"level": 1}
    assert stored[message_id]["properties"] == {"level": 5}
    counted = running.query("SELECT count(*) AS n FROM events WHERE game_id = %s AND player_id = %s",
                            (running.game_id, player))[0]["n"]
    profile = running.player(player)
    assert counted == 3 and profile is not None and profile["events"] == 3  # rollups counted each once


def test_import_takes_any_past_time_but_not_the_future(running: RunningPlatform) -> None:
    player = _player("import-limits")
    old = [new_event(player=player, timestamp=t) for t in (_ago(days=3650), "1999-12-31T23:59:59-08:00")]
    future = new_event(player=player, timestamp=_ahead(hours=1))
    answer = running.send([*old, future], key=running.import_key, path=IMPORT)
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [2] and "future" in answer["rejected"][0]["error"]
    stored = running.stored([e["event_id"] for e in old])
    assert {r["source"] for r in stored.values()} == {"import"} and len(stored) == 2


# ---------------------------------------------------------------- values the database cannot hold

def test_values_beyond_what_the_store_holds_are_refused_or_dead_lettered_never_stall_the_processor(
    running: RunningPlatform,
) -> None:
    player = _player("extremes")

    def purchase(price: Any, currency: str = "USD") -> dict[str, Any]:
        return new_event("purchase", player, properties={"item_id": "gem", "price": price, "currency": currency})

    extremes = [
        purchase(1e15),                      # revenue_usd is numeric(18, 6)
        purchase(1e308),
        purchase("Infinity"),
        purchase(2e18, "KRW"),
        new_event("ad_impression", player, properties={"revenue_usd": 1e20}),
        new_event("session_end", player, properties={"duration_seconds": 1e300}),  # playtime is bigint
        new_event("session_end", player, properties={"duration_seconds": "inf"}),
        purchase(4.2, "XYZ"),                # no exchange rate: dead-lettered, never guessed
    ]
    history = [new_event(player=player, timestamp="0001-01-01T00:00:00+14:00"),
               new_event(player=player, timestamp="0001-01-01T00:00:00Z")]
    goods = [purchase(999_999.99), new_event("session_end", player, properties={"duration_seconds": 3600})]
    live = running.send([*extremes, goods[0]])
    imported = running.send([*history, goods[1]], key=running.import_key, path=IMPORT)
    refused = {extremes[r["index"]]["event_id"] for r in live["rejected"]}
    refused |= {history[r["index"]]["event_id"] for r in imported["rejected"]}

    # The processor must drain past them (`stored` waits for it) and store the good ones.
    everything = [e["event_id"] for e in [*extremes, *history, *goods]]
    stored = running.stored(everything)
    dead = running.dead_letters(everything)
    for event in [*extremes, *history]:
        outcomes = [event["event_id"] in refused, event["event_id"] in dead, event["event_id"] in stored]
        assert outcomes.count(True) == 1, (event, outcomes)
        if event in extremes:
            assert event["event_id"] not in stored, event
    assert dead[extremes[-1]["event_id"]]["reason"] == "purchase currency 'XYZ' has no exchange rate configured"
    assert all(d["reason"] for d in dead.values())
    assert sorted(e["event_id"] for e in goods) == sorted(set(stored) & {e["event_id"] for e in goods})
    assert stored[goods[0]["event_id"]]["revenue_usd"] == Decimal("999999.990000")


# ---------------------------------------------------------------- straight to the raw topic

async def test_records_written_straight_to_the_raw_topic_that_fail_validation_are_dead_lettered(
    running: RunningPlatform,
) -> None:
    tenant, game = uuid.UUID(running.tenant_id), uuid.UUID(running.game_id)
    player = _player("raw")
    _, dead_before = running.counters()
    encoder = msgspec.json.Encoder()

    def envelope(event: Any, received_at: datetime | None = None) -> bytes:
        raw = msgspec.Raw(event if isinstance(event, bytes) else json.dumps(event).encode())
        return encoder.encode(RawEnvelope(tenant, game, received_at or datetime.now(UTC), raw))

    unknown_type = new_event("teleport", player)
    too_new = new_event(player=player, timestamp=_ahead(days=2))
    nul_id = {**new_event(player=player), "event_id": "\u0000-not-a-uuid"}
    good = new_event(player=player)
    bad_values = [envelope(unknown_type), envelope(too_new), envelope(nul_id), envelope(b'"not an object"')]
    unreadable = b"\x00\xffthis is no envelope"
    messages = [Message(partition_key(tenant, player), value) for value in [*bad_values, envelope(good)]]
    messages.append(Message(b"", unreadable))
    settings = Settings(data_dir=running.data_dir, database_url=running.database_url,
                        bus=BusSettings(partitions=BUS_PARTITIONS))
    async with connect(settings, running.database_url, name="e2e-raw-writer", pool_size=1) as platform:
        await platform.bus.producer().send(RAW_EVENTS, messages)

    running.wait_drained()
    assert good["event_id"] in running.stored([good["event_id"]])
    letters = {bytes(r["payload"]): r for r in running.query(
        "SELECT * FROM dead_letters WHERE payload = ANY(%s)", ([*bad_values, unreadable],))}
    assert sorted(letters) == sorted([*bad_values, unreadable])
    assert "unknown event_type 'teleport'" in letters[bad_values[0]]["reason"]
    assert "in the future" in letters[bad_values[1]]["reason"]
    assert "event_id" in letters[bad_values[2]]["reason"]
    assert "\x00" not in (letters[bad_values[2]]["event_id"] or "")
    assert "object" in letters[bad_values[3]]["reason"]
    assert letters[unreadable]["reason"].startswith("unreadable raw envelope")
    assert letters[unreadable]["tenant_id"] is None
    for value in bad_values:
        letter = letters[value]
        assert (str(letter["tenant_id"]), str(letter["game_id"])) == (running.tenant_id, running.game_id)
        assert letter["source_topic"] == RAW_EVENTS

    # The DLQ topic carries the original bytes with the reason in the headers (Kafka Connect's convention).
    published = {entry.value: entry.headers for r in running.query(
        "SELECT records FROM bus_log WHERE topic = %s", (EVENTS_DLQ,))
        for entry in decode_batch(bytes(r["records"])) if entry.value in {*bad_values, unreadable}}
    assert sorted(published) == sorted([*bad_values, unreadable])
    assert all(h["error.reason"] == letters[v]["reason"] and h["source.topic"] == RAW_EVENTS
               for v, h in published.items())

    # `gamemetrics status` counts the dead letters it can attribute to the game, and agrees with the rows.
    status = running.game_status()
    assert status["events_dead_lettered"] == dead_before + len(bad_values)
    rows = running.query("SELECT (SELECT count(*) FROM events WHERE game_id = %(g)s) AS stored,"
                         " (SELECT count(*) FROM dead_letters WHERE game_id = %(g)s) AS dead", {"g": running.game_id})
    assert (status["events_stored"], status["events_dead_lettered"]) == (rows[0]["stored"], rows[0]["dead"])
    assert (status["name"], status["tenant_id"]) == ("E2E Game", running.tenant_id)


# ---------------------------------------------------------------- the key's rate and the bus

def test_a_key_over_its_event_rate_gets_429_with_retry_after(running: RunningPlatform) -> None:
    key = running.rate_key
    player = _player("rate")
    accepted: list[str] = []
    for _ in range(30):  # the burst is 1000 events and the refill 100/s: 30 × 500 cannot all pass
        events = [new_event(player=player) for _ in range(500)]
        response = running.post(NATIVE, {"events": events}, key=key)
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
        accepted += [e["event_id"] for e in events]
    else:
        pytest.fail("30 batches of 500 events never met the key's rate limit")
    assert len(accepted) >= KEY_RATE_BURST_EVENTS  # the burst was honoured first
    assert int(response.headers["Retry-After"]) >= 1
    assert "rate" in response.json()["error"]
    refused_ids = [e["event_id"] for e in events]
    assert running.stored(refused_ids) == {}
    assert len(running.stored(accepted)) == len(accepted)
    other = running.post(NATIVE, {"events": [new_event()]}, key=running.live_key)  # the limit is per key
    assert other.status_code == 200


def test_a_bus_that_cannot_take_the_batch_gets_503_and_nothing_of_it_is_stored(running: RunningPlatform) -> None:
    tenant = uuid.UUID(running.tenant_id)
    player = _player("bus-down")
    refused_key = partition_key(tenant, player)
    # The log refuses this player's appends, as a full disk or a failing broker would refuse all of them.
    running.query(f"ALTER TABLE bus_log ADD CONSTRAINT e2e_refuse"
                  f" CHECK (position('\\x{refused_key.hex()}'::bytea IN keys) = 0) NOT VALID")
    try:
        events = [new_event(player=_player("bus-neighbour")), new_event(player=player)]
        response = running.post(NATIVE, {"events": events})
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "nothing was stored" in response.json()["error"]
    finally:
        running.query("ALTER TABLE bus_log DROP CONSTRAINT IF EXISTS e2e_refuse")
    assert running.stored([e["event_id"] for e in events]) == {}
    assert running.send(events)["accepted"] == 2  # the client's retry, once the bus is back
    assert len(running.stored([e["event_id"] for e in events])) == 2


# ---------------------------------------------------------------- never a 500

# Each field is mostly valid with a share of garbage, so most requests carry events that get as far
# as the processor, where a value the store cannot hold would stall it.
_text = st.text(max_size=12)
_name = st.text(min_size=1, max_size=12)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), _text,
    st.sampled_from(["inf", "-Infinity", "NaN", "1e400", "0", "", "USD", "2026-01-01T00:00:00Z"]),
)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)), max_leaves=10)


def _mostly(valid: st.SearchStrategy[Any], garbage: st.SearchStrategy[Any] = _json) -> st.SearchStrategy[Any]:
    """Seven draws in eight from `valid` (st.one_of would draw each branch as often)."""
    return st.sampled_from(range(8)).flatmap(lambda i: valid if i else garbage)


_zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))])
_recent = st.integers(min_value=-10 * 86400, max_value=3600).map(
    lambda s: (datetime.now(UTC) + timedelta(seconds=s)).isoformat())
_times = _mostly(_recent, st.one_of(
    st.datetimes(timezones=_zones).map(datetime.isoformat), st.datetimes().map(datetime.isoformat), _json))
_numbers = st.one_of(
    st.integers(min_value=-5, max_value=10**16), st.floats(allow_nan=False, allow_infinity=False), _scalars)
_amounts = _mostly(st.floats(min_value=0, max_value=1e6), _numbers)
_properties = _mostly(
    st.fixed_dictionaries(
        {"item_id": _mostly(_name), "price": _amounts, "level": _mostly(st.integers(0, 100)),
         "achievement_id": _mostly(_name),
         "currency": st.sampled_from(["USD", "EUR", "JPY", "KRW", "XYZ", "usd", "EURO", 3])},
        optional={"quantity": _mostly(st.integers(1, 10), _numbers), "duration_seconds": _amounts,
                  "revenue_usd": _amounts, "score": _numbers, "nested": _json, "session_id": _json},
    ),
)
_context = _mostly(st.fixed_dictionaries({}, optional={
    "platform": _mostly(_name), "os": _mostly(_name), "country": _mostly(st.sampled_from(["DE", "br", "XX1"])),
    "app_version": _mostly(_name), "locale": _mostly(_name), "extra": _json}))
_native_event = st.fixed_dictionaries(
    {"event_type": _mostly(st.sampled_from(sorted(EVENT_TYPES))), "player_id": _mostly(_name),
     "timestamp": _times},
    optional={"properties": _properties, "context": _context, "session_id": _mostly(_name),
              "name": _mostly(_name)},
)
_segment_message = st.fixed_dictionaries(
    {"type": _mostly(st.sampled_from(["track", "identify"]), st.sampled_from(["page", "alias", "screen", 5])),
     "userId": _mostly(_name), "event": _mostly(st.sampled_from(
         ["Order Completed", "Level Started", "Item Used", "Boss Defeated", "session_end", "purchase"]))},
    optional={"anonymousId": _json, "timestamp": _times, "sentAt": _times, "originalTimestamp": _times,
              "properties": _properties, "traits": _mostly(st.dictionaries(_name, _json, max_size=3)),
              "context": _mostly(st.fixed_dictionaries({}, optional={
                  "os": _mostly(st.fixed_dictionaries({"name": _name, "version": _text})),
                  "device": _mostly(st.fixed_dictionaries({}, optional={"type": _name, "model": _name})),
                  "app": _json, "location": _json, "sessionId": _json}))},
)
_legacy_event = st.fixed_dictionaries(
    {"player_id": _mostly(_name), "event_type": _mostly(st.sampled_from(
        ["login", "logout", "level_up", "purchase", "achievement", "game_start", "game_end", "user_action"]))},
    optional={"timestamp": _mostly(_recent.map(lambda t: t[:19])), "data": _properties},
)
_unusable_ids = st.one_of(st.none(), st.just(""), st.integers(), st.lists(_scalars, max_size=2))


def _with_fresh_id(draw: st.DrawFn, event: Any, field: str) -> Any:
    """Accepted events need ids no other example used, so the store's counters add up exactly;
    the other ids drawn can never be accepted (a drawn string could repeat as a Segment messageId)."""
    if isinstance(event, dict):
        event[field] = str(uuid.uuid4()) if draw(st.sampled_from(range(10))) > 0 else draw(_unusable_ids)
    return event


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    """(path, which key, body, headers): a structured request with fuzzed fields, or plain garbage."""
    kind = draw(st.sampled_from(["native", "import", "segment", "track", "legacy", "garbage"]))
    if kind in ("native", "import"):
        events = [_with_fresh_id(draw, e, "event_id") for e in draw(st.lists(_mostly(_native_event), max_size=4))]
        path, body = (NATIVE if kind == "native" else IMPORT), json.dumps({"events": events}).encode()
    elif kind == "segment":
        batch = [_with_fresh_id(draw, m, "messageId") for m in draw(st.lists(_segment_message, max_size=4))]
        path, body = BATCH, json.dumps({"batch": batch, "sentAt": draw(_times)}).encode()
    elif kind == "track":
        path, body = TRACK, json.dumps(_with_fresh_id(draw, draw(_segment_message), "messageId")).encode()
    elif kind == "legacy":
        event = draw(_legacy_event)
        event["game_id"] = draw(st.sampled_from(["$GAME", "$GAME", str(uuid.uuid4()), 5]))
        path, body = LEGACY, json.dumps(event).encode()
    else:
        path = draw(st.sampled_from(ALL_PATHS))
        body = draw(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "application/json", "text/plain",
                                                     "application/octet-stream"]))}
    if draw(st.sampled_from(range(6))) == 0:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    key = "import" if kind == "import" else draw(st.sampled_from(["scratch", "scratch", "scratch", "none"]))
    return path, key, body, headers


def test_no_request_ever_gets_a_500_and_every_accepted_event_is_stored_or_dead_lettered(
    running: RunningPlatform,
) -> None:
    stored_before, dead_before = running.counters()
    accepted = 0
    keys = {"scratch": running.scratch_key, "import": running.import_key, "none": ""}

    @settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(_requests())
    def post(request: tuple[str, str, bytes, dict[str, str]]) -> None:
        nonlocal accepted
        path, key, body, headers = request
        body = body.replace(b"$GAME", running.game_id.encode())
        response = running.post(path, content=body, key=keys[key], headers=headers)  # a 5xx fails here
        assert response.status_code in (200, 400, 401, 403, 413, 415, 429), (response.status_code, response.text)
        answer = response.json()
        if response.status_code != 200:
            assert answer.get("error") or answer.get("detail"), answer  # the original contract says `detail`
        elif path == LEGACY:
            accepted += 1
        else:
            accepted += answer["accepted"]

    post()
    stored, dead = running.counters()  # waits for the processor: a poisoned batch would stall it here
    assert (stored - stored_before) + (dead - dead_before) == accepted
