"""The simulator's pure parts: seeded journeys, and the batching and pacing arithmetic of the sender."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamemetrics.events.enrich import revenue_usd
from gamemetrics.events.validation import Limits, decode_event
from gamemetrics.settings import DEFAULT_FX_RATES_USD, Settings
from gamemetrics.simulator.model import Day, Simulation, as_live, local_price
from gamemetrics.simulator.sender import MAX_BATCH_EVENTS, Pacer, batched

START = date(2026, 3, 2)
DAYS = 21
LIMITS = Limits.from_settings(Settings(database_url="postgresql://unused"))


def simulate(
    seed: int = 7, players: int = 200, days: int = DAYS, arrival_days: int = 14
) -> tuple[Simulation, list[Day]]:
    simulation = Simulation(seed=seed, players=players, start=START, arrival_days=arrival_days)
    return simulation, list(itertools.islice(simulation.days(), days))


@pytest.fixture(scope="module")
def population() -> tuple[Simulation, list[Day]]:
    return simulate()


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def test_the_same_seed_gives_the_same_events_and_another_seed_does_not() -> None:
    _, first = simulate(seed=11, players=40, days=5)
    _, again = simulate(seed=11, players=40, days=5)
    _, other = simulate(seed=12, players=40, days=5)
    encode = msgspec.json.encode
    assert [encode(d.events) for d in first] == [encode(d.events) for d in again]
    assert sum(len(d.events) for d in first) > 0
    ids = {e["event_id"] for d in first for e in d.events}
    assert ids.isdisjoint(e["event_id"] for d in other for e in d.events)


def test_another_launch_day_is_another_population() -> None:
    a = Simulation(seed=1, players=5, start=START, arrival_days=3)
    b = Simulation(seed=1, players=5, start=START + timedelta(days=1), arrival_days=3)
    assert {p.player_id for p in a.players}.isdisjoint(p.player_id for p in b.players)


def test_every_event_passes_validation_and_enrichment(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    checked = 0
    for day in days:
        for event in day.events:
            decoded = decode_event(msgspec.json.encode(event), limits=LIMITS, now=end_of(day.date), allow_history=True)
            revenue_usd(decoded, DEFAULT_FX_RATES_USD)  # raises for a currency without a rate
            checked += 1
    assert checked > 10_000


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63), players=st.integers(1, 8), days=st.integers(1, 4))
def test_any_seed_gives_valid_events_in_time_order(seed: int, players: int, days: int) -> None:
    _, generated = simulate(seed=seed, players=players, days=days, arrival_days=days)
    for day in generated:
        stamps = [e["timestamp"] for e in day.events]
        assert stamps == sorted(stamps)
        for event in day.events:
            decoded = decode_event(msgspec.json.encode(event), limits=LIMITS, now=end_of(day.date), allow_history=True)
            assert decoded.timestamp.date() == day.date


def test_each_players_events_move_forward_in_time_within_their_day(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    for day in days:
        by_player: dict[str, list[str]] = defaultdict(list)
        for event in day.events:
            by_player[event["player_id"]].append(event["timestamp"])
            assert event["timestamp"].startswith(day.date.isoformat())
        for stamps in by_player.values():
            assert len(set(stamps)) == len(stamps) and stamps == sorted(stamps)


def test_sessions_start_before_they_end_and_hold_their_events(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    sessions: dict[str, list[dict]] = defaultdict(list)
    for day in days:
        for event in day.events:
            if "session_id" in event:
                sessions[event["session_id"]].append(event)
    assert len(sessions) > 1000
    for events in sessions.values():
        kinds = [e["event_type"] for e in events]
        assert kinds[0] == "session_start" and kinds[-1] == "session_end"
        assert kinds.count("session_start") == 1 and kinds.count("session_end") == 1
        assert len({e["player_id"] for e in events}) == 1
        started = datetime.fromisoformat(events[0]["timestamp"])
        ended = datetime.fromisoformat(events[-1]["timestamp"])
        assert started < ended
        assert events[-1]["properties"]["duration_seconds"] == pytest.approx((ended - started).total_seconds(), abs=1)


def test_a_players_sessions_do_not_overlap(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    spans: dict[str, list[tuple[str, str]]] = defaultdict(list)
    opened: dict[str, str] = {}
    for day in days:
        for event in day.events:
            if event["event_type"] == "session_start":
                opened[event["session_id"]] = event["timestamp"]
            elif event["event_type"] == "session_end":
                spans[event["player_id"]].append((opened.pop(event["session_id"]), event["timestamp"]))
    assert not opened
    for player_spans in spans.values():
        for (_, end), (start, _) in itertools.pairwise(player_spans):
            assert end < start


def test_purchases_use_several_currencies_at_local_prices(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    purchases = [e for d in days for e in d.events if e["event_type"] == "purchase"]
    currencies = {p["properties"]["currency"] for p in purchases}
    assert len(purchases) >= 20
    assert len(currencies) >= 4
    assert currencies <= set(DEFAULT_FX_RATES_USD)
    assert all(p["properties"]["price"] > 0 and p["properties"]["quantity"] >= 1 for p in purchases)


def test_local_prices_are_store_price_points() -> None:
    assert local_price(0.99, "USD") == 0.99
    assert local_price(4.99, "GBP") == 3.99
    assert local_price(0.99, "JPY") == 150.0
    assert local_price(9.99, "KRW") % 10 == 0


def test_players_arrive_over_the_days_and_churn_so_retention_decays(population: tuple[Simulation, list[Day]]) -> None:
    simulation, days = population
    first_day: dict[str, date] = {}
    active: dict[str, set[int]] = defaultdict(set)
    for day in days:
        for player in day.active_players:
            first_day.setdefault(player, day.date)
            active[player].add((day.date - first_day[player]).days)
    assert len(set(first_day.values())) >= 7  # arrivals spread over the launch weeks
    first_events = {}
    for day in days:
        for event in day.events:
            first_events.setdefault(event["player_id"], event["event_type"])
    assert set(first_events.values()) == {"identify"}

    def retention(offset: int) -> float:
        eligible = [p for p, d in first_day.items() if d + timedelta(days=offset) <= days[-1].date]
        return sum(offset in active[p] for p in eligible) / len(eligible)

    assert retention(1) > retention(7) > 0
    churned = {p for p, progress in simulation.progress.items() if progress.churned_on is not None}
    assert len(churned) > len(simulation.players) // 3
    for player in churned:
        gone = simulation.progress[player].churned_on
        assert all(player not in d.active_players for d in days if d.date >= gone)


def test_a_loyal_core_keeps_an_endless_stream_going() -> None:
    simulation = Simulation(seed=3, players=3, start=START, arrival_days=1)
    days = list(itertools.islice(simulation.days(), 60))
    assert simulation.players[0].loyal
    assert any(d.events for d in days[-10:])


def test_live_copies_get_new_ids_and_times_but_keep_the_rest(population: tuple[Simulation, list[Day]]) -> None:
    _, days = population
    event = next(e for e in days[3].events if "session_id" in e)
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    live = as_live(event, at, "run-1")
    assert live["event_id"] != event["event_id"] and live["session_id"] != event["session_id"]
    assert datetime.fromisoformat(live["timestamp"]) == at
    assert as_live(event, at, "run-1") == live
    assert as_live(event, at, "run-2")["event_id"] != live["event_id"]
    assert {k: v for k, v in live.items() if k not in ("event_id", "session_id", "timestamp")} == {
        k: v for k, v in event.items() if k not in ("event_id", "session_id", "timestamp")
    }


def test_batches_respect_both_request_limits() -> None:
    small = [(b"x" * 100, i) for i in range(1200)]
    counts = [len(b.bodies) for b in batched(small)]
    assert counts == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 200]
    big = [(b"y" * 300_000, i) for i in range(7)]
    bodies = list(batched(big, max_bytes=1024 * 1024))
    assert [len(b.bodies) for b in bodies] == [3, 3, 1]
    assert [s for b in bodies for s in b.sources] == list(range(7))
    for batch in bodies:
        assert len(b'{"events":[' + b",".join(batch.bodies) + b"]}") <= 1024 * 1024


def test_the_pacer_lets_events_out_at_the_rate_without_bursting_after_a_stall() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = Pacer(200, clock=lambda: clock[0], sleep=sleep)
    assert pacer.batch_size() == 100
    for _ in range(10):
        pacer.wait(100)
    assert clock[0] == pytest.approx(100.0 + 9 * 0.5)
    clock[0] += 30  # a stall: the next batches are paced from now, not sent all at once
    pacer.wait(100)
    pacer.wait(100)
    assert slept[-1] == pytest.approx(0.5)
    assert Pacer(None).batch_size() == MAX_BATCH_EVENTS
