"""Metric arithmetic of the analytics API against brute-force definitions, with hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.services.analytics.errors import BadUserInput
from gamemetrics.services.analytics.metrics import (
    FunnelCounter,
    days_between,
    field_cost,
    per_head,
    retention_value,
    rolling_active,
)

DAY0 = date(2026, 1, 1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _words(activity: dict[str, set[int]], start: int) -> list[tuple[str, int, int]]:
    """What the activeUsers SQL returns: each player's active days from `start` on as 63-bit words."""
    words: dict[tuple[str, int], int] = {}
    for player, days in activity.items():
        for day in days:
            if day >= start:
                k, bit = divmod(day - start, 63)
                words[player, k] = words.get((player, k), 0) | 1 << bit
    return [(player, k, bits) for (player, k), bits in words.items()]


@given(
    activity=st.dictionaries(st.text(min_size=1, max_size=3), st.sets(st.integers(0, 200), min_size=1), max_size=12),
    window=st.sampled_from([1, 7, 30]),
)
def test_rolling_active_counts_players_active_in_each_window(activity: dict[str, set[int]], window: int) -> None:
    days = [DAY0 + timedelta(days=i) for i in range(40, 190)]
    start = 40 - (window - 1)
    result = rolling_active(_words(activity, start), DAY0 + timedelta(days=start), days, window)
    for day, value in result:
        offset = (day - DAY0).days
        expected = sum(1 for active in activity.values() if any(offset - window < a <= offset for a in active))
        assert value == expected, (day, window)


def test_days_between_refuses_reversed_and_long_ranges() -> None:
    assert days_between(DAY0, DAY0, max_days=1) == [DAY0]
    assert len(days_between(DAY0, DAY0 + timedelta(days=399), max_days=400)) == 400
    with pytest.raises(BadUserInput, match="401 days"):
        days_between(DAY0, DAY0 + timedelta(days=400), max_days=400)
    with pytest.raises(BadUserInput, match="before"):
        days_between(DAY0, DAY0 - timedelta(days=1), max_days=400)


def test_money_per_head_rounds_half_up_to_the_micro_dollar() -> None:
    assert per_head(Decimal("1"), 3) == Decimal("0.333333")
    assert per_head(Decimal("2"), 3) == Decimal("0.666667")
    assert per_head(Decimal("0.0000005"), 1) == Decimal("0.000001")
    assert per_head(Decimal("5"), 0) is None


def test_retention_is_unknown_before_its_day_and_for_empty_cohorts() -> None:
    today = DAY0 + timedelta(days=10)
    assert retention_value(3, 4, DAY0, 7, today) == 0.75
    assert retention_value(0, 4, DAY0, 10, today) == 0.0  # today: the share so far
    assert retention_value(0, 4, DAY0, 11, today) is None
    assert retention_value(0, 0, DAY0, 1, today) is None


# Funnel: one player's events as (minute, steps matched); brute force over the definition.
event = st.tuples(st.integers(0, 300), st.lists(st.booleans(), min_size=3, max_size=3))


def _brute_force(events: list[tuple[int, list[bool]]], window: int) -> int:
    ordered = sorted(events, key=lambda e: e[0])
    firsts = [t for t, m in ordered if m[0]]
    if not firsts:
        return 0
    first = previous = firsts[0]
    reached = 1
    for step in (1, 2):
        later = [t for t, m in ordered if m[step] and previous < t <= first + window]
        if not later:
            break
        previous = min(later)
        reached += 1
    return reached


@given(events=st.lists(event, max_size=12), window=st.integers(1, 200))
def test_funnel_counter_follows_the_definition(events: list[tuple[int, list[bool]]], window: int) -> None:
    counter = FunnelCounter(3, timedelta(minutes=window))
    ordered = sorted(events, key=lambda e: e[0])  # the query orders each player's events by time
    reached = counter.player([(T0 + timedelta(minutes=t), m) for t, m in ordered])
    assert reached == _brute_force(events, window)
    assert counter.reached == [1 if reached > i else 0 for i in range(3)]


def test_cost_follows_days_and_weighs_raw_event_reads() -> None:
    span = {"from": "2026-01-01", "to": "2026-03-31"}  # 90 days
    assert field_cost("revenue", span) == 90
    assert field_cost("activeUsers", {**span, "window": "MONTH"}) == 119
    assert field_cost("retention", {"cohortFrom": "2026-01-01", "cohortTo": "2026-01-30", "days": [1, 7]}) == 60
    assert field_cost("funnel", {**span, "steps": [{}, {}]}) == 1800
    assert field_cost("eventsPerMinute", {"from": "2026-01-01", "to": "2026-01-01"}) == 24
    assert field_cost("revenue", {"from": "garbage", "to": None}) == 1
    assert field_cost("games", {}) == 1
    assert field_cost("ingestRefusals", span) == 90 and field_cost("deadLetters", {"reason": "x"}) == 10
