"""The Vectors port's contract on Qdrant's local mode.

No Qdrant server binary can be installed where the tests run, so the server adapter (the same
module and client, given a URL) is not run here. Local mode is the client's own in-process
implementation of the same API, on a directory, and the adapter makes the same calls to both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from gamemetrics.adapters.qdrant.vectors import QdrantVectors, local_vectors, make_vectors, point_id
from gamemetrics.ports.vectors import Point, Range
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
