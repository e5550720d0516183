"""Rules on the processed-event stream, on the running notifier: a first-purchase rule with a
property condition, three level_fail events on one level within a session, a cooldown per player,
events read twice notifying once, and the refusals of bad rules."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gamemetrics.events.processed import HEADERS, ProcessedEvent
from gamemetrics.ports.bus import PROCESSED_EVENTS, Message
from gamemetrics.runtime import connect
from tests.integration.notifier_fixtures import SEND, Notifier

THANKS: dict[str, Any] = {"category": "lifecycle", "content": {"in_app": {
    "title": "Thanks!", "body": "Enjoy your {{ event.properties.item_id }}"}},
    "sample": {"event": {"properties": {"item_id": "sword"}}}}
STUCK: dict[str, Any] = {"category": "help", "content": {"in_app": {
    "title": "Stuck on level {{ event.properties.level }}?", "body": "Here is a hint."}},
    "sample": {"event": {"properties": {"level": 1}}}}


def _event(notifier: Notifier, event_type: str, player: str, properties: dict[str, Any], *,
           session: str = "s1", at: datetime | None = None, event_id: uuid.UUID | None = None) -> ProcessedEvent:
    moment = at or datetime.now(UTC)
    return ProcessedEvent(notifier.tenant_id, notifier.game_id, event_id or uuid.uuid4(), event_type, player, moment,
                          moment, "native", False, msgspec.Raw(msgspec.json.encode(properties)),
                          msgspec.Raw(b"{}"), session_id=session)


def _publish(notifier: Notifier, events: list[ProcessedEvent]) -> None:
    async def send() -> None:
        async with connect(notifier.settings, notifier.database_url, name="test-events", pool_size=1) as platform:
            await platform.bus.producer().send(PROCESSED_EVENTS, [
                Message(e.tenant_id.bytes + e.player_id.encode(), msgspec.json.encode(e), dict(HEADERS))
                for e in events])

    asyncio.run(send())


def _notified(notifier: Notifier, player: str, expected: int) -> list[str]:
    """The templates of the player's notifications once there are `expected` (and no more after a pause)."""
    deadline = time.monotonic() + 20
    while True:
        rows = notifier.sql("SELECT template FROM notifications WHERE player_id = %s ORDER BY created_at", (player,))
        if len(rows) >= expected:
            time.sleep(0.5)  # a firing too many would show now
            return [r[0] for r in notifier.sql("SELECT template FROM notifications WHERE player_id = %s"
                                               " ORDER BY created_at", (player,))]
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)


def _wait_for(check: Any) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_rules_fire_on_matching_events_once_per_cooldown(notifier: Notifier) -> None:
    notifier.template("thanks", THANKS)
    notifier.template("stuck", STUCK)
    rules = f"/v1/games/{notifier.game_id}/notification-rules"
    auth = notifier.auth(SEND)
    buyer = {"trigger": {"event_type": "purchase", "where": {"price": {"gte": 5}, "$is_new_player": False}},
             "template": "thanks", "channels": ["in_app"], "cooldown_seconds": 3600}
    created = notifier.http.put(f"{rules}/big-buyer", json=buyer, headers=auth)
    assert created.status_code == 201, created.text
    assert notifier.http.get(f"{rules}/big-buyer", headers=auth).json()["cooldown_seconds"] == 3600
    stuck = {"trigger": {"event_type": "level_fail", "count": 3, "within": "session", "per": ["level"]},
             "template": "stuck", "channels": ["in_app"]}
    assert notifier.http.put(f"{rules}/stuck", json=stuck, headers=auth).status_code == 201
    ada, bob = notifier.player("ada"), notifier.player("bob")
    now = datetime.now(UTC)
    small = _event(notifier, "purchase", ada, {"item_id": "gem", "price": 1, "currency": "USD"})
    first = _event(notifier, "purchase", ada, {"item_id": "sword", "price": 9.99, "currency": "USD"})
    cooling = _event(notifier, "purchase", ada, {"item_id": "shield", "price": 20, "currency": "USD"},
                     at=now + timedelta(minutes=5))
    after = _event(notifier, "purchase", ada, {"item_id": "bow", "price": 20, "currency": "USD"},
                   at=now + timedelta(hours=2))
    fails = [_event(notifier, "level_fail", bob, {"level": level}) for level in (4, 4, 5, 4)]
    other_session = _event(notifier, "level_fail", bob, {"level": 4}, session="s2")
    _publish(notifier, [small, first, first, cooling, after, *fails, other_session, fails[3]])
    assert _notified(notifier, ada, 2) == ["thanks", "thanks"]  # the first, and the one after the cooldown
    assert _notified(notifier, bob, 1) == ["stuck"]  # the third fail on level 4 in session s1
    [status] = notifier.sql("SELECT notification_id FROM notifications WHERE player_id = %s AND idempotency_key"
                            " = %s", (ada, f"rule:big-buyer:{first.event_id}"))
    assert notifier.settled(str(status[0]))["state"] == "sent"
    _wait_for(lambda: len(notifier.sql("SELECT 1 FROM outbox WHERE recipient = 'ada'")) == 2)
    assert sorted(notifier.sql("SELECT body FROM outbox WHERE recipient = 'ada'")) == [
        ("Enjoy your bow",), ("Enjoy your sword",)]


def test_bad_rules_are_refused_with_reasons(notifier: Notifier) -> None:
    notifier.template("thanks", THANKS)
    rules = f"/v1/games/{notifier.game_id}/notification-rules"
    auth = notifier.auth(SEND)
    good = {"trigger": {"event_type": "purchase"}, "template": "thanks"}
    for change, says in [
        ({"trigger": {"event_type": "loot_box"}}, "unknown event type"),
        ({"template": "nope"}, "no template"),
        ({"trigger": {"event_type": "purchase", "where": {"price": {"about": 3}}}}, "one of eq"),
        ({"trigger": {"event_type": "purchase", "where": {"price": {"gte": "ten"}}}}, "is a number"),
        ({"trigger": {"event_type": "purchase", "where": {"$wallet": 1}}}, "event fields"),
        ({"trigger": {"event_type": "level_fail", "count": 0}}, "count"),
        ({"trigger": {"event_type": "level_fail", "count": 3, "within": "day"}}, "session"),
        ({"cooldown_seconds": -1}, "cooldown"),
        ({"channels": ["fax"]}, "channels"),
    ]:
        answer = notifier.http.put(f"{rules}/bad", json={**good, **change}, headers=auth)
        assert answer.status_code == 422 and says in answer.json()["error"], (change, answer.text)
    assert notifier.http.get(f"{rules}/bad", headers=auth).status_code == 404
    assert notifier.http.put(f"{rules}/ok", json=good, headers=notifier.auth("players:read")).status_code == 403
    assert notifier.http.put(f"{rules}/ok", json=good, headers=auth).status_code == 201
    assert notifier.http.delete(f"{rules}/ok", headers=auth).status_code == 204


def test_an_inactivity_rule_notifies_each_quiet_player_once_per_spell(notifier: Notifier) -> None:
    notifier.template("miss-you", {"category": "winback", "content": {"in_app": {
        "title": "We miss you", "body": "Quiet since {{ inactive_since[:10] }}"}},
        "sample": {"inactive_since": "2026-01-01T00:00:00+00:00"}})
    quiet, active = notifier.player("quiet"), notifier.player("active")
    notifier.sql("UPDATE players SET last_seen = now() - interval '10 days' WHERE player_id = %s", (quiet,))
    rule = {"trigger": {"schedule": {"inactive_days": 7}}, "template": "miss-you", "channels": ["in_app"]}
    saved = notifier.http.put(f"/v1/games/{notifier.game_id}/notification-rules/win-back", json=rule,
                              headers=notifier.auth(SEND))
    assert saved.status_code == 201 and saved.json()["trigger"] == {"schedule": {"inactive_days": 7.0}}, saved.text
    assert _notified(notifier, quiet, 1) == ["miss-you"]
    time.sleep(0.5)  # further passes of the scheduler: the same spell is not notified again
    assert _notified(notifier, quiet, 1) == ["miss-you"] and _notified(notifier, active, 0) == []
    # The player came back (an event after the firing) and went quiet again: a new spell.
    notifier.sql("UPDATE players SET last_seen = now() - interval '8 days' + interval '1 second'"
                 " WHERE player_id = %s", (quiet,))
    notifier.sql("UPDATE notification_rule_fires SET fired_at = now() - interval '9 days' WHERE player_id = %s",
                 (quiet,))
    assert _notified(notifier, quiet, 2) == ["miss-you", "miss-you"]
    bad = notifier.http.put(f"/v1/games/{notifier.game_id}/notification-rules/bad",
                            json={**rule, "trigger": {"schedule": {"inactive_days": 0}}}, headers=notifier.auth(SEND))
    assert bad.status_code == 422 and "inactive_days" in bad.json()["error"]
