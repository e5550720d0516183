"""The Vectors port's contract on Qdrant's local mode.

No Qdrant server binary can be installed where the tests run, so the server adapter (the same
module and client, given a URL) is not run here. Local mode is the client's own in-process
implementation of the same API, on a directory, and the adapter makes the same calls to both;
in local mode it answers searches from its memory index, held here to the answers of local mode
itself."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from gamemetrics.adapters.qdrant.vectors import LocalQdrantVectors, QdrantVectors, local_vectors, make_vectors, point_id
from gamemetrics.ports.vectors import Distance, Point, Range, Scalar
from gamemetrics.settings import VectorSettings

ITEMS = "items"


@pytest_asyncio.fixture
async def vectors(tmp_path: Path) -> AsyncIterator[QdrantVectors]:
    store = local_vectors(tmp_path / "qdrant")
    await store.ensure_collection(ITEMS, size=3)
    await store.ensure_collection(ITEMS, size=3)  # idempotent
    yield store
    await store.close()


def _items() -> list[Point]:
    return [
        Point("sword", [1.0, 0.0, 0.0], {"tenant": "a", "game": "g1", "kind": "weapon"}),
        Point("axe", [0.9, 0.1, 0.0], {"tenant": "a", "game": "g1", "kind": "weapon"}),
        Point("shield", [0.0, 1.0, 0.0], {"tenant": "a", "game": "g1", "kind": "armour"}),
        Point("other-sword", [1.0, 0.0, 0.0], {"tenant": "b", "game": "g9", "kind": "weapon"}),
        Point("bow", [0.7, 0.0, 0.7], {"tenant": "a", "game": "g2", "kind": "weapon"}),
    ]


async def test_search_orders_by_similarity_within_the_filter(vectors: QdrantVectors) -> None:
    await vectors.upsert(ITEMS, _items())
    hits = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"tenant": "a", "game": "g1"})
    assert [h.name for h in hits] == ["sword", "axe", "shield"]
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[0].payload == {"tenant": "a", "game": "g1", "kind": "weapon"}
    weapons = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=2, where={"tenant": "a", "kind": "weapon"})
    assert [h.name for h in weapons] == ["sword", "axe"]
    games = await vectors.search(ITEMS, [0.0, 0.0, 1.0], limit=10, where={"tenant": "a", "game": ["g2", "g1"]})
    assert games[0].name == "bow" and {h.name for h in games} == {"sword", "axe", "shield", "bow"}


async def test_upsert_replaces_a_point_of_the_same_name(vectors: QdrantVectors) -> None:
    await vectors.upsert(ITEMS, _items())
    await vectors.upsert(ITEMS, [Point("shield", [1.0, 0.0, 0.0], {"tenant": "a", "game": "g1", "kind": "armour"})])
    hits = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"tenant": "a", "game": "g1"})
    assert len(hits) == 3 and hits[-1].name == "axe"


async def test_delete_by_names_and_by_filter(vectors: QdrantVectors) -> None:
    await vectors.upsert(ITEMS, _items())
    await vectors.delete(ITEMS, names=["axe"])
    assert [h.name for h in await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"game": "g1"})] == [
        "sword", "shield"]
    await vectors.delete(ITEMS, where={"tenant": "a"})
    assert [h.name for h in await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10)] == ["other-sword"]


async def test_points_outlive_the_client(tmp_path: Path) -> None:
    store = make_vectors(VectorSettings(), tmp_path)
    await store.ensure_collection(ITEMS, size=3)
    await store.upsert(ITEMS, _items())
    await store.close()
    again = make_vectors(VectorSettings(), tmp_path)
    try:
        hits = await again.search(ITEMS, [0.0, 1.0, 0.0], limit=1)
        assert [h.name for h in hits] == ["shield"]
    finally:
        await again.close()
    assert point_id("shield") == point_id("shield") != point_id("sword")


async def test_ranges_exclusions_payload_updates_and_vectors(vectors: QdrantVectors) -> None:
    prices = [5, 1.5, 20, 5, 9]
    priced = [Point(p.name, p.vector, {**p.payload, "price": price}) for p, price in zip(_items(), prices, strict=True)]
    await vectors.upsert(ITEMS, priced)
    cheap = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"tenant": "a", "price": Range(lte=9)})
    assert [h.name for h in cheap] == ["sword", "axe", "bow"]
    band = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"tenant": "a", "price": Range(gte=2, lte=9)})
    assert [h.name for h in band] == ["sword", "bow"]
    others = await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10, where={"game": "g1"}, exclude=["sword", "nope"])
    assert [h.name for h in others] == ["axe", "shield"]
    assert [h.name for h in await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=1, exclude=["sword"])] == [
        "other-sword"]
    await vectors.set_payload(ITEMS, {"available": False}, where={"tenant": "a", "kind": "weapon"})
    assert [h.name for h in await vectors.search(ITEMS, [1.0, 0.0, 0.0], limit=10,
                                                 where={"tenant": "a", "available": False})] == ["sword", "axe", "bow"]
    found = await vectors.vectors(ITEMS, ["shield", "sword", "missing"])
    assert found == {"shield": [0.0, 1.0, 0.0], "sword": [1.0, 0.0, 0.0]}


async def test_writes_after_the_first_search_are_searched(vectors: QdrantVectors) -> None:
    await vectors.upsert(ITEMS, _items()[:2])
    assert [h.name for h in await vectors.search(ITEMS, [0.0, 1.0, 0.0], limit=1)] == ["axe"]
    await vectors.upsert(ITEMS, _items()[2:])
    assert [h.name for h in await vectors.search(ITEMS, [0.0, 1.0, 0.0], limit=1)] == ["shield"]
    await vectors.delete(ITEMS, names=["shield"])
    await vectors.set_payload(ITEMS, {"kind": "bow"}, where={"game": "g2"})
    assert [h.name for h in await vectors.search(ITEMS, [0.0, 1.0, 0.0], limit=5, where={"kind": ["bow", "x"]})] == [
        "bow"]
    assert await vectors.vectors(ITEMS, ["shield", "bow"]) == {"bow": pytest.approx([0.7071068, 0.0, 0.7071068])}


def _random_points(rng: random.Random, count: int) -> list[Point]:
    values: list[Scalar] = [True, False, 0, 1, 2, 1.0, 2.5, "1", "a", "b"]
    points = []
    for n in range(count):
        payload = {key: rng.choice(values) for key in ("x", "y") if rng.random() < 0.8}
        points.append(Point(f"p{n}", [rng.uniform(-1, 1) for _ in range(4)], payload))
    return points


def _random_where(rng: random.Random) -> dict[str, Scalar | Sequence[Scalar] | Range]:
    choices: list[Scalar | Sequence[Scalar] | Range] = [
        True, False, 1, 2, 1.0, "a", "1", ["a", "b"], [1, 2], Range(gte=1), Range(lte=1.5), Range(gte=0.5, lte=2)]
    return {key: rng.choice(choices) for key in ("x", "y") if rng.random() < 0.6}


@pytest.mark.parametrize("distance", ["dot", "cosine", "euclid"])
async def test_the_memory_index_answers_as_qdrant_local_mode_does(tmp_path: Path, distance: Distance) -> None:
    """Every search through the adapter against the same search made by Qdrant's local mode itself."""
    store = local_vectors(tmp_path / "qdrant")
    assert isinstance(store, LocalQdrantVectors)
    rng = random.Random(3)
    try:
        await store.ensure_collection("mixed", 4, distance)
        points = _random_points(rng, 300)
        await store.upsert("mixed", points)
        await store.delete("mixed", names=[f"p{n}" for n in range(0, 300, 7)])
        await store.set_payload("mixed", {"y": "b"}, where={"x": "a"})
        for _ in range(60):
            where, query = _random_where(rng), [rng.uniform(-1, 1) for _ in range(4)]
            exclude = [f"p{rng.randrange(300)}" for _ in range(3)]
            ours = await store.search("mixed", query, limit=7, where=where, exclude=exclude)
            qdrants = await QdrantVectors.search(store, "mixed", query, limit=7, where=where, exclude=exclude)
            assert [h.name for h in ours] == [h.name for h in qdrants], where
            assert [h.score for h in ours] == pytest.approx([h.score for h in qdrants], rel=1e-5, abs=1e-6)
            assert [h.payload for h in ours] == [h.payload for h in qdrants]
        names = [p.name for p in points]
        ours_vectors = await store.vectors("mixed", names)
        theirs = await QdrantVectors.vectors(store, "mixed", names)
        assert ours_vectors.keys() == theirs.keys()
        assert all(ours_vectors[n] == pytest.approx(theirs[n], rel=1e-6) for n in theirs)
    finally:
        await store.close()


async def test_local_mode_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    store = local_vectors(tmp_path / "qdrant")
    await store.ensure_collection(ITEMS, size=3)
    await store.upsert(ITEMS, _items())
    await store.close()
    [stored] = (tmp_path / "qdrant").rglob("storage.sqlite")
    with contextlib.closing(sqlite3.connect(stored)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
