"""Offline evaluation: the metrics on plain data, and the trained model against popularity on
simulated games with and without taste structure."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from itertools import islice

import pytest

from gamemetrics.services.recommender.evaluation import Event, NotEnoughData, evaluate, score
from gamemetrics.simulator.model import Simulation
from gamemetrics.simulator.tastes import CATALOGUE, CATEGORIES, Taste, taste_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_metrics_on_plain_lists() -> None:
    ranked = {"ann": ["a", "b", "c"], "bob": ["x", "y", "z"]}
    relevant = {"ann": {"b", "q"}, "bob": {"nothing"}}
    got = score(ranked, relevant, catalogue=12, k=3)
    assert got.precision == pytest.approx((1 / 3 + 0) / 2)
    assert got.recall == pytest.approx((1 / 2 + 0) / 2)
    assert got.hit_rate == pytest.approx(0.5)
    assert got.ndcg == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3))) / 2)
    assert got.coverage == pytest.approx(6 / 12) and got.players == 2
    perfect = score({"ann": ["b", "q"]}, {"ann": {"b", "q"}}, catalogue=2, k=2)
    assert perfect.ndcg == pytest.approx(1.0) and perfect.recall == 1.0


def test_a_split_without_data_on_both_sides_is_refused() -> None:
    events = [Event("p", "i", "purchase", T0)]
    with pytest.raises(NotEnoughData):
        evaluate(events, split=T0)
    with pytest.raises(NotEnoughData):
        evaluate(events, split=T0 + timedelta(days=1))


def test_tastes_prefer_their_favourite_categories_and_drift_slowly() -> None:
    import random
    rng = random.Random(1)
    taste = taste_of(rng)
    picks = [taste.pick(rng).category for _ in range(2000)]
    favourites = sorted(CATEGORIES, key=lambda c: -taste.categories[CATEGORIES.index(c)])[:2]
    assert sum(p in favourites for p in picks) > 0.6 * len(picks)
    before = list(taste.categories)
    taste.drift(rng)
    assert sum(abs(a - b) for a, b in zip(before, taste.categories, strict=True)) <= 2 * 0.03 * sum(before) + 1e-9
    plain = Taste([1.0] * len(CATEGORIES), 2.0, structured=False)
    assert len({plain.pick(rng).item_id for _ in range(3000)}) == len(CATALOGUE)


def simulated(*, tastes: bool, players: int = 600, days: int = 14) -> list[Event]:
    simulation = Simulation(seed=5, players=players, start=date(2026, 1, 1), arrival_days=3, tastes=tastes)
    return [Event(e["player_id"], e["properties"]["item_id"], e["event_type"], datetime.fromisoformat(e["timestamp"]))
            for day in islice(simulation.days(), days) for e in day.events
            if e["event_type"] in ("item_acquired", "item_used", "purchase")]


def test_the_model_beats_popularity_when_players_have_tastes() -> None:
    report = evaluate(simulated(tastes=True), factors=8)
    assert report.test_players > 100
    # The margin the documentation states: at least 30% more NDCG@10 than popularity.
    assert report.model.ndcg >= 1.3 * report.popularity.ndcg, report
    assert report.model.coverage > report.popularity.coverage


def test_the_model_is_not_much_worse_without_structure() -> None:
    report = evaluate(simulated(tastes=False), factors=8)
    assert report.model.ndcg >= 0.9 * report.popularity.ndcg, report
