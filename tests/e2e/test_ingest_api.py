"""End to end through the ingest API of a running `gamemetrics up`: the native API, Segment's real
Python SDK pointed at ingest, and the original GameMetrics contract; every event is read back
from PostgreSQL and compared field by field with what was sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from segment.analytics import Client

from tests.e2e.conftest import RunningPlatform, new_event


def _player(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_native_batch_is_stored_event_by_event_with_its_enrichment(running: RunningPlatform) -> None:
    player, session = _player("native"), f"s-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    context = {"platform": "iPhone", "os": "iOS 17.2", "app_version": "1.4.0", "country": "de",
               "device": "iPhone15,2", "locale": "de-DE", "build": "b-77"}
    kinds: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("session_start", {}, {"session_id": session, "context": context}),
        ("level_start", {"level": 3}, {}),
        ("level_complete", {"level": 3, "score": 1200.5, "duration_seconds": 95}, {}),
        ("purchase", {"item_id": "gems_100", "price": 4.99, "currency": "EUR", "quantity": 2}, {}),
        ("item_acquired", {"item_id": "sword", "quantity": 1}, {}),
        ("achievement_unlocked", {"achievement_id": "first_blood"}, {}),
        ("ad_impression", {"ad_network": "admob", "placement": "rewarded", "revenue_usd": 0.012}, {}),
        ("custom", {"boss": "dragon", "loot": {"gold": [1, 2, {"rare": True}]}}, {"name": "boss_defeated"}),
        ("identify", {"nickname": "Ana", "vip": True}, {}),
        ("session_end", {"duration_seconds": 300}, {}),
    ]
    events = [
        new_event(kind, player, timestamp=(start + timedelta(seconds=i)).isoformat(), properties=props, **extra)
        for i, (kind, props, extra) in enumerate(kinds)
    ]
    sent_at = datetime.now(UTC)
    assert running.send(events) == {"accepted": len(events), "rejected": []}

    stored = running.stored([e["event_id"] for e in events])
    assert len(stored) == len(events)
    revenue = {"purchase": Decimal("10.778400"), "ad_impression": Decimal("0.012000")}  # 4.99 × 2 × 1.08 EUR
    for i, event in enumerate(events):
        row = stored[event["event_id"]]
        assert str(row["tenant_id"]) == running.tenant_id and str(row["game_id"]) == running.game_id
        assert row["event_type"] == event["event_type"]
        assert row["event_name"] == event.get("name")
        assert row["player_id"] == player
        assert row["session_id"] == session, f"event {i} was not stitched into the player's session"
        assert row["event_time"] == datetime.fromisoformat(event["timestamp"])
        assert sent_at - timedelta(seconds=1) <= row["received_at"] <= datetime.now(UTC)
        assert row["source"] == "live"
        assert row["properties"] == event["properties"]
        assert row["is_new_player"] is (i == 0)
        assert row["revenue_usd"] == revenue.get(event["event_type"])
        if i == 0:
            assert row["context"] == context
            assert (row["platform"], row["os"], row["app_version"], row["country"]) == ("ios", "ios", "1.4.0", "DE")
        else:
            assert row["context"] == {} and row["platform"] is None

    profile = running.player(player)
    assert profile is not None
    assert (profile["first_seen"], profile["last_seen"]) == (stored[events[0]["event_id"]]["event_time"],
                                                             stored[events[-1]["event_id"]]["event_time"])
    assert (profile["platform"], profile["country"], profile["events"], profile["sessions"]) == ("ios", "DE", 10, 1)
    assert profile["lifetime_revenue_usd"] == Decimal("10.778400")
    assert profile["traits"] == {"nickname": "Ana", "vip": True}
    day = running.query("SELECT * FROM player_days WHERE game_id = %s AND player_id = %s", (running.game_id, player))
    assert [(d["events"], d["sessions"], d["playtime_seconds"], d["purchases"], d["revenue_usd"]) for d in day] == [
        (9, 1, 300, 1, Decimal("10.778400"))  # identify is a profile update, not activity
    ]


def test_the_key_as_basic_user_name_works_like_a_bearer_token(running: RunningPlatform) -> None:
    event = new_event(player=_player("basic"))
    response = running.post("/v1/events", {"events": [event]}, basic=True)
    assert response.status_code == 200 and response.json() == {"accepted": 1, "rejected": []}
    assert str(running.stored([event["event_id"]])[event["event_id"]]["game_id"]) == running.game_id


def test_history_goes_through_import_with_an_import_key_only(running: RunningPlatform) -> None:
    player = _player("history")
    old = [new_event("level_complete", player, timestamp=(datetime.now(UTC) - timedelta(days=d)).isoformat(),
                     properties={"level": d}) for d in (400, 30, 8)]
    refused = running.post("/v1/import", {"events": old}, key=running.live_key)
    assert refused.status_code == 403 and "--allow-import" in refused.json()["error"]
    live = running.send(old, key=running.import_key, path="/v1/events")
    assert live["accepted"] == 0 and all("/v1/import" in r["error"] for r in live["rejected"])

    assert running.send(old, key=running.import_key, path="/v1/import") == {"accepted": 3, "rejected": []}
    stored = running.stored([e["event_id"] for e in old])
    for event in old:
        row = stored[event["event_id"]]
        assert row["source"] == "import"
        assert row["event_time"] == datetime.fromisoformat(event["timestamp"])
        assert row["properties"] == event["properties"]


def test_segment_python_sdk_in_sync_mode_maps_track_and_identify(running: RunningPlatform) -> None:
    user = _player("seg")
    errors: list[Exception] = []
    client = Client(running.live_key, host=running.base_url, sync_mode=True, max_retries=0,
                    on_error=lambda error, batch: errors.append(error))
    device = {"os": {"name": "Android", "version": "14"}, "device": {"model": "Pixel 8", "type": "android"},
              "app": {"version": "2.0.1"}, "location": {"country": "br"}, "locale": "pt-BR"}
    order_id, boss_id = str(uuid.uuid4()), str(uuid.uuid4())
    level_message = f"level-7-done-{user}"  # not a UUID: must become a stable UUIDv5
    client.identify(user, {"email": "ana@example.com", "plan": "free"}, context=dict(device))
    client.track(user, "Order Completed", {"order_id": "o-1", "revenue": 9.99, "currency": "BRL",
                                           "products": [{"product_id": "coins_500", "price": 9.99}]},
                 context=dict(device), message_id=order_id)
    client.track(user, "Level Completed", {"level": 7, "score": 300}, message_id=level_message)
    client.track(user, "Boss Defeated", {"boss": "hydra"}, message_id=boss_id)
    # An SDK retry resends the same messageId: the first copy stays, the second is a duplicate.
    client.track(user, "Boss Defeated", {"boss": "retried"}, message_id=boss_id)
    client.track(user, "Level Completed", {"level": 7, "score": 999}, message_id=level_message)
    client.identify(user, {"plan": "pro", "level": 7})
    assert errors == []

    running.wait_drained()
    rows = running.query("SELECT * FROM events WHERE game_id = %s AND player_id = %s ORDER BY event_time",
                         (running.game_id, user))
    assert [r["event_type"] for r in rows] == ["identify", "purchase", "level_complete", "custom", "identify"]
    purchase = next(r for r in rows if r["event_type"] == "purchase")
    assert str(purchase["event_id"]) == order_id
    assert purchase["properties"]["price"] == 9.99 and purchase["properties"]["currency"] == "BRL"
    assert purchase["properties"]["item_id"] == "coins_500"
    assert purchase["revenue_usd"] == Decimal("1.798200")  # 9.99 BRL × 0.18
    assert (purchase["platform"], purchase["os"], purchase["app_version"], purchase["country"]) == (
        "android", "android", "2.0.1", "BR")
    assert purchase["context"]["library"]["name"] == "analytics-python"
    assert purchase["context"]["device"] == "Pixel 8" and purchase["context"]["locale"] == "pt-BR"
    level = next(r for r in rows if r["event_type"] == "level_complete")
    assert level["event_id"].version == 5 and level["properties"] == {"level": 7, "score": 300}
    boss = next(r for r in rows if r["event_type"] == "custom")
    assert (str(boss["event_id"]), boss["event_name"], boss["properties"]) == (boss_id, "Boss Defeated",
                                                                               {"boss": "hydra"})
    profile = running.player(user)
    assert profile is not None
    assert profile["traits"] == {"email": "ana@example.com", "plan": "pro", "level": 7}
    assert profile["lifetime_revenue_usd"] == Decimal("1.798200")


def test_segment_sdk_batches_gzip_bodies_in_the_background(running: RunningPlatform) -> None:
    user = _player("seg-batch")
    errors: list[Exception] = []
    client = Client(running.live_key, host=running.base_url, gzip=True, upload_size=25, upload_interval=0.05,
                    max_retries=0, on_error=lambda error, batch: errors.append(error))
    ids = [str(uuid.uuid4()) for _ in range(60)]
    for i, message_id in enumerate(ids):
        client.track(user, "Item Acquired", {"item_id": f"item-{i}", "quantity": i + 1}, message_id=message_id)
    client.shutdown()
    assert errors == []
    stored = running.stored(ids)
    assert len(stored) == len(ids)
    for i, message_id in enumerate(ids):
        row = stored[message_id]
        assert (row["event_type"], row["player_id"]) == ("item_acquired", user)
        assert row["properties"] == {"item_id": f"item-{i}", "quantity": i + 1}


def test_segment_track_and_identify_endpoints_take_single_messages(running: RunningPlatform) -> None:
    user, track_id, identify_id = _player("seg-single"), str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    track = running.post("/v1/track", {"userId": user, "event": "Level Started", "properties": {"level": 1},
                                       "messageId": track_id, "timestamp": now, "sentAt": now}, basic=True)
    assert track.status_code == 200 and track.json() == {"success": True, "accepted": 1, "rejected": []}
    identify = running.post("/v1/identify", {"anonymousId": user, "traits": {"tier": "gold"},
                                             "messageId": identify_id}, basic=True)
    assert identify.status_code == 200 and identify.json()["accepted"] == 1
    stored = running.stored([track_id, identify_id])
    assert stored[track_id]["event_type"] == "level_start" and stored[track_id]["properties"] == {"level": 1}
    assert stored[identify_id]["event_type"] == "identify"
    profile = running.player(user)
    assert profile is not None and profile["traits"] == {"tier": "gold"}


def test_identify_traits_sent_together_all_merge_latest_first(running: RunningPlatform) -> None:
    user = _player("seg-traits")
    base = datetime.now(UTC) - timedelta(minutes=1)
    messages = [
        {"type": "identify", "userId": user, "messageId": str(uuid.uuid4()),
         "timestamp": (base + timedelta(seconds=s)).isoformat(), "traits": traits}
        for s, traits in ((0, {"email": "a@example.com", "plan": "free"}), (1, {"plan": "pro"}), (2, {"age": 30}))
    ]
    response = running.post("/v1/batch", {"batch": messages}, basic=True)
    assert response.status_code == 200 and response.json()["accepted"] == 3
    profile = running.player(user)
    assert profile is not None
    assert profile["traits"] == {"email": "a@example.com", "plan": "pro", "age": 30}


def test_original_contract_maps_types_and_refuses_another_games_id(running: RunningPlatform) -> None:
    player = _player("legacy")
    base = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(minutes=5)
    sent = [
        ("login", {"platform": "pc"}, "session_start", None, {"platform": "pc"}),
        ("level_up", {"new_level": 4}, "level_complete", None, {"new_level": 4, "level": 4}),
        ("purchase", {"item_id": "starter", "amount": 2.5}, "purchase", None,
         {"item_id": "starter", "amount": 2.5, "price": 2.5, "currency": "USD"}),
        ("achievement", {"achievement": "first_win"}, "achievement_unlocked", None,
         {"achievement": "first_win", "achievement_id": "first_win"}),
        ("game_end", {"score": 10, "duration": 30}, "custom", "game_end", {"score": 10, "duration": 30}),
        ("logout", {}, "session_end", None, {}),
    ]
    ids = []
    for i, (legacy_type, data, *_) in enumerate(sent):
        response = running.post("/api/v1/events", {
            "player_id": player, "game_id": running.game_id, "event_type": legacy_type,
            "timestamp": (base + timedelta(seconds=i)).isoformat(), "data": data,
        })
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        ids.append(body["event_id"])
    stored = running.stored(ids)
    for i, (event_id, (_, _, native_type, name, properties)) in enumerate(zip(ids, sent, strict=True)):
        row = stored[event_id]
        assert (row["event_type"], row["event_name"], row["properties"]) == (native_type, name, properties)
        assert row["event_time"] == (base + timedelta(seconds=i)).replace(tzinfo=UTC)  # naive means UTC
    assert stored[ids[2]]["revenue_usd"] == Decimal("2.500000")

    other_game = running.post("/api/v1/events", {"player_id": player, "game_id": str(uuid.uuid4()),
                                                 "event_type": "login"})
    assert other_game.status_code == 403 and "not the game of this write key" in other_game.json()["error"]


def test_health_readiness_and_metrics_answer(running: RunningPlatform) -> None:
    for path in ("/healthz", "/health/live"):
        response = running.http.get(path)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    for path in ("/readyz", "/health/ready"):
        response = running.http.get(path)
        assert response.status_code == 200
        body = response.json()
        # Every service's checks merged by name: the spine's two, and whatever the others add (vectors).
        assert body["status"] == "ok" and set(body["checks"].values()) == {"ok"}
        assert {"database", "bus"} <= set(body["checks"])
        assert body["services"]["ingest"] == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}
    running.send([new_event(player=_player("metrics"))])
    running.wait_drained()
    metrics = running.http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    values = _samples(metrics.text)
    assert values.get("gamemetrics_events_accepted_total", 0) >= 1
    assert values.get("gamemetrics_events_stored_total", 0) >= 1  # the processor's, through the shared dir


def _samples(text: str) -> dict[str, float]:
    """Metric name → the sum of its samples over labels."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals

