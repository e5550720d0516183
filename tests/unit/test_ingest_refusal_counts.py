"""Counting ingest's refusals in the process: per game, hour and reason; taken, put back; read by day."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from gamemetrics.events.validation import InvalidEvent, Limits, decode_event
from gamemetrics.services.dashboard.periods import Period
from gamemetrics.services.dashboard.refusals import by_reason, rows_csv
from gamemetrics.services.ingest import refusals
from gamemetrics.services.ingest.refusals import RefusalCounts
from gamemetrics.settings import Settings

TENANT, GAME, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_counts_add_up_per_hour_and_reason_and_start_again_once_taken() -> None:
    now = [datetime(2026, 3, 10, 9, 59, 59, tzinfo=UTC)]
    counts = RefusalCounts(lambda: now[0])
    counts.add(TENANT, GAME, "rate_limited", events=50)
    counts.add(TENANT, GAME, "rate_limited", events=20)
    counts.add(TENANT, OTHER, "too_large", events=0)
    now[0] += timedelta(seconds=2)  # the next hour
    counts.add(TENANT, GAME, "rate_limited", events=5)
    nine, ten = datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 10, tzinfo=UTC)
    assert counts.take() == {(TENANT, GAME, nine, "rate_limited"): [70, 2], (TENANT, OTHER, nine, "too_large"): [0, 1],
                             (TENANT, GAME, ten, "rate_limited"): [5, 1]}
    assert counts.take() == {}


def test_counts_a_flush_could_not_store_join_the_ones_counted_since() -> None:
    at = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    counts = RefusalCounts(lambda: at)
    counts.add(TENANT, GAME, "revoked_key", events=0)
    taken = counts.take()
    counts.add(TENANT, GAME, "revoked_key", events=3)
    counts.put_back(taken)
    assert counts.take() == {(TENANT, GAME, at.replace(minute=0), "revoked_key"): [3, 2]}


def test_past_the_bound_new_games_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refusals, "MAX_KEYS", 2)
    counts = RefusalCounts()
    for _ in range(3):
        counts.add(TENANT, uuid.uuid4(), "too_large", events=0)
    counts.add(TENANT, GAME, "too_large", events=0, requests=4)
    assert len(counts.take()) == 2 and counts.dropped == 5


def test_each_broken_rule_has_its_kind() -> None:
    limits = Limits.from_settings(Settings())
    now = datetime.now(UTC)

    def kind(raw: bytes) -> str:
        try:
            decode_event(raw, limits=limits, now=now, allow_history=False)
        except InvalidEvent as exc:
            return exc.kind
        raise AssertionError("accepted")

    def event(event_type: str, at: datetime) -> bytes:
        return (f'{{"event_id": "{uuid.uuid4()}", "event_type": "{event_type}", "player_id": "p",'
                f' "timestamp": "{at.isoformat()}"}}').encode()

    assert kind(event("teleport", now)) == "unknown_event_type"
    assert kind(event("session_start", now + timedelta(days=1))) == "timestamp_in_future"
    assert kind(event("session_start", now - timedelta(days=30))) == "timestamp_too_old"
    assert kind(b'{"event_type": "session_start"}') == "invalid_schema"
    assert kind(b"x" * (limits.max_event_bytes + 1)) == "event_too_large"


def test_the_page_shows_each_reason_with_its_totals_and_a_point_per_day() -> None:
    period = Period(date(2026, 3, 8), date(2026, 3, 10))
    rows = [("2026-03-08", "rate_limited", 100, 2), ("2026-03-10", "rate_limited", 50, 1),
            ("2026-03-10", "too_large", 600, 3), ("2026-03-09", "revoked_key", 0, 1)]
    shown = by_reason(rows, period)
    assert [(r.reason, r.requests, r.events) for r in shown] == [
        ("rate_limited", 3, 150), ("too_large", 3, 600), ("revoked_key", 1, 0)]
    assert shown[0].daily == [("2026-03-08", 2.0), ("2026-03-09", 0.0), ("2026-03-10", 1.0)]
    assert shown[2].label == "revoked write key" and by_reason([], period) == []
    assert rows_csv(rows[:1]) == "date,reason,events,requests\r\n2026-03-08,rate_limited,100,2\r\n"
