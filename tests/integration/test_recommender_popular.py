"""Popular lists on PostgreSQL: one read per segment while players ask at once, the list kept for
the next players, and each player's owned items taken out of the shared list."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psycopg
import pytest_asyncio

from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.adapters.qdrant.vectors import LocalQdrantVectors, local_vectors
from gamemetrics.migrations import upgrade
from gamemetrics.services.recommender.factors import Factors
from gamemetrics.services.recommender.interactions import Interactions
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.serving import (
    Pick,
    PlayerAnswer,
    Query,
    Recommender,
    Served,
    generation_key,
)
from tests.integration.users_fixtures import add_tenant


def _answer(served: Served) -> PlayerAnswer:
    return msgspec.json.decode(served.body, type=PlayerAnswer)


class CountedReads(Recommender):
    """The recommender, counting how often it aggregates the window (each read made slow enough
    that the other players' requests arrive while it runs)."""

    reads = 0

    async def _read_popular(self, *args: Any) -> list[Pick]:
        self.reads += 1
        await asyncio.sleep(0.2)
        return await super()._read_popular(*args)


@pytest_asyncio.fixture
async def game(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[CountedReads, uuid.UUID, uuid.UUID]]:
    upgrade(database_url)
    tenant, game_id, _, _ = add_tenant(database_url)
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:  # item-k is acquired by k players
        for k in range(1, 6):
            for player in range(k):
                conn.execute("INSERT INTO rec_interactions (tenant_id, event_id, game_id, player_id, item_id,"
                             " event_type, at, country, platform) VALUES (%s, %s, %s, %s, %s, 'item_acquired', %s,"
                             " 'DE', 'ios')", (tenant, uuid.uuid4(), game_id, f"p{player}", f"item-{k}", now))
        conn.execute("INSERT INTO rec_items (tenant_id, game_id, item_id) SELECT DISTINCT tenant_id, game_id,"
                     " item_id FROM rec_interactions WHERE game_id = %s", (game_id,))
    pool = await open_pool(database_url, max_size=4, name="test-rec-popular")
    vectors = local_vectors(tmp_path / "qdrant")
    interactions = Interactions(pool)
    recommender = CountedReads(pool, interactions, Models(pool, vectors), vectors, MemoryCache(1 << 20),
                               cache_seconds=60, popular_days=14, popular=LocalMemo(100, ttl_seconds=60))
    try:
        yield recommender, tenant, game_id
    finally:
        await vectors.close()
        await pool.close()


async def test_players_asking_at_once_share_one_read(game: tuple[CountedReads, uuid.UUID, uuid.UUID]) -> None:
    recommender, tenant, game_id = game
    query = Query(n=3)
    answers = await asyncio.gather(*(recommender.popular(tenant, game_id, query, exclude=[], country="DE",
                                                         platform="ios") for _ in range(20)))
    assert recommender.reads == 1
    assert all([p.item_id for p in answer] == ["item-5", "item-4", "item-3"] for answer in answers)
    owner = await recommender.popular(tenant, game_id, query, exclude=["item-5", "item-3"], country="DE",
                                      platform="ios")
    assert [p.item_id for p in owner] == ["item-4", "item-2", "item-1"] and recommender.reads == 1  # kept
    await recommender.popular(tenant, game_id, query, exclude=[], country="FR", platform="ios")
    assert recommender.reads == 2  # another segment is another list


async def test_a_cold_player_gets_the_shared_list_without_what_they_own(
        game: tuple[CountedReads, uuid.UUID, uuid.UUID]) -> None:
    recommender, tenant, game_id = game
    stranger = _answer(await recommender.recommend(tenant, game_id, "stranger",
                                                   Query(n=5, country="DE", platform="ios")))
    assert [p.item_id for p in stranger.items] == ["item-5", "item-4", "item-3", "item-2", "item-1"]
    p1 = _answer(await recommender.recommend(tenant, game_id, "p1", Query(n=5)))  # owns item-2 to item-5; DE, iOS
    assert [p.item_id for p in p1.items] == ["item-1"] and {p.source for p in p1.items} == {"popular"}
    assert recommender.reads == 1


class InteractingMeanwhile(CountedReads):
    """The recommender, with the player interacting (their generation renewed, as the interactions
    worker does) while their answer is computed."""

    async def _compute(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, *args: Any) -> Any:
        answer = await super()._compute(tenant_id, game_id, player_id, *args)
        await self._cache.set(generation_key(tenant_id, game_id, player_id), uuid.uuid4().hex.encode(), 60)
        return answer


async def test_an_answer_is_kept_until_the_players_generation_is_renewed(
        game: tuple[CountedReads, uuid.UUID, uuid.UUID]) -> None:
    recommender, tenant, game_id = game
    first = await recommender.recommend(tenant, game_id, "p1", Query(n=3))
    again = await recommender.recommend(tenant, game_id, "p1", Query(n=3))
    assert not first.cached and again.cached and again.body == first.body
    assert not (await recommender.recommend(tenant, game_id, "p1", Query(n=2))).cached  # another query
    await recommender._cache.set(generation_key(tenant, game_id, "p1"), b"renewed", 60)
    renewed = await recommender.recommend(tenant, game_id, "p1", Query(n=3))
    assert not renewed.cached and _answer(renewed).recommendation_id != _answer(first).recommendation_id


async def test_an_answer_computed_while_the_player_interacted_is_not_given_again(
        game: tuple[CountedReads, uuid.UUID, uuid.UUID]) -> None:
    recommender, tenant, game_id = game
    meanwhile = InteractingMeanwhile(recommender._pool, recommender._interactions, recommender._models,
                                     recommender._vectors, recommender._cache, cache_seconds=60, popular_days=14)
    assert not (await meanwhile.recommend(tenant, game_id, "p2", Query(n=3))).cached
    # Kept under the generation read before the player's rows, which is no longer theirs.
    assert not (await recommender.recommend(tenant, game_id, "p2", Query(n=3))).cached
    assert (await recommender.recommend(tenant, game_id, "p2", Query(n=3))).cached


async def test_warming_loads_the_active_versions_collections(
        game: tuple[CountedReads, uuid.UUID, uuid.UUID]) -> None:
    recommender, tenant, game_id = game
    models, vectors = recommender._models, recommender._vectors
    assert await models.warm([(tenant, game_id)]) == []  # nothing trained yet
    factors = Factors(["p1"], ["item-1", "item-2"], np.array([[1.0, 0.0]], np.float32),
                      np.array([[0.2, 0.0], [0.9, 0.0]], np.float32))
    model = await models.publish(tenant, game_id, factors, algorithm="als", interactions=2,
                                 read_at=datetime.now(UTC))
    assert isinstance(vectors, LocalQdrantVectors) and not vectors._indexes  # written, not yet read
    assert await models.warm([(tenant, game_id), (tenant, uuid.uuid4())]) == [model.items, model.players]
    assert set(vectors._indexes) == {model.items, model.players}
