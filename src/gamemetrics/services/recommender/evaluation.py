"""Offline evaluation on a time split: train on interactions before the split, then ask each
player's top items and compare them with what the player purchased or acquired after it; the
trained model side by side with the popularity baseline (pure work on plain data)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from gamemetrics.services.recommender.factors import Algorithm, Factors, fit, matrix, top_items
from gamemetrics.services.recommender.interactions import DEFAULT_WEIGHTS, OWNING_EVENTS

K = 10


@dataclass(frozen=True, slots=True)
class Event:
    """One interaction as evaluation reads it."""

    player: str
    item: str
    event_type: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Scores:
    """Mean per test player of precision, recall, NDCG and hit rate at K; catalogue coverage."""

    precision: float
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    players: int

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Report:
    split: datetime
    model: Scores
    popularity: Scores
    train_interactions: int
    test_players: int


class NotEnoughData(ValueError):
    """No player has interactions on both sides of the split."""


def default_split(events: Sequence[Event], share: float = 0.8) -> datetime:
    """The time before which `share` of the interactions lie."""
    times = sorted(e.at for e in events)
    return times[min(len(times) - 1, int(len(times) * share))]


def score(ranked: Mapping[str, list[str]], relevant: Mapping[str, set[str]], catalogue: int, k: int = K) -> Scores:
    """The metrics of ranked lists against each test player's relevant items."""
    precision = recall = ndcg = hits = 0.0
    shown: set[str] = set()
    for player, wanted in relevant.items():
        top = ranked.get(player, [])[:k]
        shown.update(top)
        found = [item in wanted for item in top]
        precision += sum(found) / k
        recall += sum(found) / len(wanted)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(wanted))))
        ndcg += sum(1 / math.log2(i + 2) for i, hit in enumerate(found) if hit) / ideal
        hits += any(found)
    n = max(1, len(relevant))
    return Scores(precision / n, recall / n, ndcg / n, hits / n, len(shown) / max(1, catalogue), len(relevant))


def evaluate(events: Sequence[Event], *, split: datetime | None = None, algorithm: Algorithm = "als",
             factors: int = 32, iterations: int = 15, regularization: float = 0.05,
             weights: Mapping[str, float] = DEFAULT_WEIGHTS, k: int = K,
             progress: Callable[[int, int], object] | None = None) -> Report:
    """Train on events before `split` (default: the 80th percentile of their times), test on the
    items each known player purchased or acquired after it that they did not own before."""
    split = split or default_split(events)
    train = [e for e in events if e.at < split]
    triples = [(e.player, e.item, weights.get(e.event_type, 0.0)) for e in train]
    m = matrix([t for t in triples if t[2] > 0])
    if not m.players:
        raise NotEnoughData(f"no interactions before {split.isoformat()}")
    owned: dict[str, set[str]] = defaultdict(set)
    for e in train:
        if e.event_type in OWNING_EVENTS:
            owned[e.player].add(e.item)
    known_players, known_items = set(m.players), set(m.items)
    relevant: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if (e.at >= split and e.event_type in OWNING_EVENTS and e.player in known_players
                and e.item in known_items and e.item not in owned[e.player]):
            relevant[e.player].add(e.item)
    if not relevant:
        raise NotEnoughData(f"no player known before {split.isoformat()} acquired a new item after it")
    trained = fit(m, algorithm=algorithm, factors=factors, iterations=iterations, regularization=regularization,
                  progress=progress)
    model_ranked = _model_ranked(trained, relevant, owned, k)
    totals = _popularity(triples)
    popular = sorted(m.items, key=lambda item: (-totals[item], item))
    popular_ranked = {p: [i for i in popular if i not in owned[p]][:k] for p in relevant}
    catalogue = len(m.items)
    return Report(split, score(model_ranked, relevant, catalogue, k), score(popular_ranked, relevant, catalogue, k),
                  len(train), len(relevant))


def _popularity(triples: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for _, item, weight in triples:
        totals[item] += weight
    return totals


def _model_ranked(trained: Factors, relevant: Mapping[str, set[str]], owned: Mapping[str, set[str]],
                  k: int) -> dict[str, list[str]]:
    rows = {player: row for row, player in enumerate(trained.players)}
    columns = {item: col for col, item in enumerate(trained.items)}
    ranked = {}
    for player in relevant:
        exclude = {columns[i] for i in owned.get(player, set()) if i in columns}
        ranked[player] = [trained.items[c] for c in top_items(trained, rows[player], k, exclude)]
    return ranked
