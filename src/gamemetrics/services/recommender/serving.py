"""Answering "what should this player be offered next?": the trained model's items, items like the
player's own when they are newer than the model, popular ones for the rest; cached per query.

A player's answer is kept as the JSON body it is sent as, after the generation it was computed
under, so a cached answer costs one read of the cache (the player's generation and the answer
together) and no decoding or encoding. The generation is renewed when the player interacts or is
erased; an answer kept under another generation is not given.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
from psycopg_pool import AsyncConnectionPool

from gamemetrics.ports.cache import MISS, Cache, CacheError, Memo
from gamemetrics.ports.vectors import Range, Scalar, Vectors, VectorStoreError, Where
from gamemetrics.services.recommender.catalogue import tenant_transaction
from gamemetrics.services.recommender.interactions import Interactions, weights_sql
from gamemetrics.services.recommender.models import ActiveModel, Models


class Query(msgspec.Struct, frozen=True):
    """What is asked beside the player: how many, and which items qualify."""

    n: int = 10
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    country: str | None = None
    platform: str | None = None


class Pick(msgspec.Struct, frozen=True):
    item_id: str
    score: float
    source: str


class Answer(msgspec.Struct):
    recommendation_id: uuid.UUID
    model_version: int | None
    items: list[Pick]
    fallback: list[str] = msgspec.field(default_factory=list)


class PlayerAnswer(msgspec.Struct):
    """A player's answer as the API sends it."""

    player_id: str
    recommendation_id: uuid.UUID
    model_version: int | None
    items: list[Pick]


@dataclass(frozen=True, slots=True)
class Served:
    """A player's answer: its JSON body, the dependencies it was given without, and whether it was kept."""

    body: bytes
    fallback: list[str]
    cached: bool


@dataclass(slots=True)
class Degraded:
    """Dependencies that did not answer while serving one request."""

    reasons: list[str] = field(default_factory=list)


_encode = msgspec.json.Encoder().encode
# Between the generation an answer was computed under and its body (a generation has no newline).
_SEPARATOR = b"\n"

# Popular lists are read this many items deep at a time, so players excluding a few owned items share one.
POPULAR_DEPTH = 50
PopularKey = tuple[uuid.UUID, uuid.UUID, str | None, float | None, float | None, str | None, str | None, int]


def generation_key(tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str) -> str:
    """The key of a player's answer generation, renewed when they interact or are erased."""
    return f"gen:{tenant_id}:{game_id}:{player_id}"


def answer_keys(tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, version: int, query: Query) -> list[str]:
    """The keys of the player's generation (`generation_key`) and of their answer to `query` on
    model `version`, whichever generation it was computed under."""
    player = f"{tenant_id}:{game_id}:{player_id}"  # once for both: every request asks them
    return [f"gen:{player}", f"answer:{player}:{version}:{_encode(query).decode()}"]


def _filters(query: Query) -> dict[str, Scalar | Range]:
    where: dict[str, Scalar | Range] = {"available": True}
    if query.category is not None:
        where["category"] = query.category
    if query.min_price is not None or query.max_price is not None:
        where["price"] = Range(gte=query.min_price, lte=query.max_price)
    return where


class Recommender:
    """Ranks items for players and items like an item, on the active model and the catalogue."""

    def __init__(self, pool: AsyncConnectionPool, interactions: Interactions, models: Models, vectors: Vectors,
                 cache: Cache, *, cache_seconds: float, popular_days: float,
                 popular: Memo[PopularKey, list[Pick]] | None = None) -> None:
        self._pool = pool
        self._popular = popular
        self._reading: dict[PopularKey, asyncio.Future[list[Pick]]] = {}
        self._interactions = interactions
        self._models = models
        self._vectors = vectors
        self._cache = cache
        self._ttl = cache_seconds
        self._window = timedelta(days=popular_days)

    async def recommend(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, query: Query) -> Served:
        """The player's answer: from the cache when kept under their current generation, else computed and kept."""
        degraded = Degraded()
        model = await self._models.active(tenant_id, game_id)
        keys = answer_keys(tenant_id, game_id, player_id, model.version if model else 0, query)
        generation: bytes | None = None
        try:
            current, kept = await self._cache.get_many(keys)
            # Read before the player's rows: an interaction stored meanwhile renews it, and the
            # answer computed here is then kept under a generation no longer current.
            generation = (current or b"0") + _SEPARATOR
            if kept is not None and kept.startswith(generation):
                return Served(kept[len(generation):], [], cached=True)
        except CacheError:
            degraded.reasons.append("cache")
        answer = await self._compute(tenant_id, game_id, player_id, query, model, degraded)
        body = _encode(PlayerAnswer(player_id, answer.recommendation_id, answer.model_version, answer.items))
        if generation is not None and "vectors" not in degraded.reasons:
            try:
                await self._cache.set(keys[1], generation + body, self._ttl)
            except CacheError:
                answer.fallback.append("cache")
        return Served(body, answer.fallback, cached=False)

    async def _compute(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, query: Query,
                       model: ActiveModel | None, degraded: Degraded) -> Answer:
        history = await self._interactions.player(tenant_id, game_id, player_id)
        owned = history.owned
        picks: list[Pick] = []
        if model is not None:
            try:
                picks = await self._personal(model, player_id, owned, query)
            except VectorStoreError:
                degraded.reasons.append("vectors")
        if len(picks) < query.n:
            taken = {p.item_id for p in picks}
            popular = await self.popular(tenant_id, game_id, query, exclude=[*owned, *taken],
                                         country=history.country or query.country,
                                         platform=history.platform or query.platform)
            picks += popular[:query.n - len(picks)]
        return Answer(uuid.uuid4(), model.version if model else None, picks, sorted(set(degraded.reasons)))

    async def _personal(self, model: ActiveModel, player_id: str, owned: list[str], query: Query) -> list[Pick]:
        """The model's picks: the player's own vector, or the mean of their items' vectors when the
        player is newer than the model."""
        found = await self._vectors.vectors(model.players, [model.name(player_id)])
        source = "collaborative"
        vector = found.get(model.name(player_id))
        if vector is None and owned:
            theirs = await self._vectors.vectors(model.items, [model.name(item) for item in owned])
            if theirs:
                vector = np.mean(np.array(list(theirs.values()), dtype=np.float32), axis=0).tolist()
                source = "similar"
        if vector is None:
            return []
        return await self._search(model, vector, query, owned, source)

    async def _search(self, model: ActiveModel, vector: list[float], query: Query, exclude: list[str],
                      source: str) -> list[Pick]:
        where: Where = {**model.where(), **_filters(query)}
        hits = await self._vectors.search(model.items, vector, limit=query.n, where=where,
                                          exclude=[model.name(item) for item in exclude])
        return [Pick(str(hit.payload["item"]), round(float(hit.score), 6), source) for hit in hits]

    async def similar(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str, query: Query) -> Answer:
        """Items whose vectors lie nearest the item's; popular items when the model does not know it."""
        model = await self._models.active(tenant_id, game_id)
        picks: list[Pick] = []
        degraded = Degraded()
        if model is not None:
            try:
                found = await self._vectors.vectors(model.items, [model.name(item_id)])
                if found:
                    picks = await self._search(model, next(iter(found.values())), query, [item_id], "similar")
            except VectorStoreError:
                degraded.reasons.append("vectors")
        if len(picks) < query.n:
            more = await self.popular(tenant_id, game_id, query, exclude=[item_id, *(p.item_id for p in picks)])
            picks += more[:query.n - len(picks)]
        return Answer(uuid.uuid4(), model.version if model else None, picks, degraded.reasons)

    async def popular(self, tenant_id: uuid.UUID, game_id: uuid.UUID, query: Query, *, exclude: list[str],
                      country: str | None = None, platform: str | None = None) -> list[Pick]:
        """Items most interacted with over the recent window: in the player's segment first, then overall.

        The list is the same for every player of a segment, and reading it aggregates the game's
        whole window: with `popular`, it is read once per segment, filters and depth (a multiple of
        POPULAR_DEPTH), and kept while the memo keeps it; each player's exclusions apply after."""
        depth = POPULAR_DEPTH * math.ceil((query.n + len(exclude)) / POPULAR_DEPTH)
        key: PopularKey = (tenant_id, game_id, query.category, query.min_price, query.max_price, country, platform,
                           depth)
        kept = self._popular.get(key) if self._popular is not None else MISS
        if kept is not MISS:
            picks = kept
        else:
            # One read per key at a time: the players asking meanwhile wait for it rather than
            # each aggregating the window again (and together holding every pooled connection).
            reading = self._reading.get(key)
            if reading is None:
                reading = self._reading[key] = asyncio.ensure_future(
                    self._read_popular(tenant_id, game_id, query, depth, country, platform))
                reading.add_done_callback(lambda done: self._read(key, done))
            picks = await asyncio.shield(reading)
        excluded = set(exclude)
        return [pick for pick in picks if pick.item_id not in excluded][:query.n]

    def _read(self, key: PopularKey, done: asyncio.Future[list[Pick]]) -> None:
        """Keep a popular list read, or forget a failed read (its waiters have its error)."""
        del self._reading[key]
        if not done.cancelled() and done.exception() is None and self._popular is not None:
            self._popular.put(key, done.result())

    async def _read_popular(self, tenant_id: uuid.UUID, game_id: uuid.UUID, query: Query, limit: int,
                            country: str | None, platform: str | None) -> list[Pick]:
        case, params = weights_sql(await self._interactions.weights(tenant_id, game_id))
        since = datetime.now(UTC) - self._window
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute(
                f"SELECT r.item_id, sum({case})::float8 AS score,"
                f" sum({case}) FILTER (WHERE (%s::text IS NULL OR r.country = %s)"
                " AND (%s::text IS NULL OR r.platform = %s))::float8 AS in_segment"
                " FROM rec_interactions r JOIN rec_items i USING (tenant_id, game_id, item_id)"
                " WHERE r.tenant_id = %s AND r.game_id = %s AND r.at >= %s AND i.available"
                " AND (%s::text IS NULL OR i.category = %s)"
                " AND (%s::numeric IS NULL OR i.price >= %s) AND (%s::numeric IS NULL OR i.price <= %s)"
                " GROUP BY r.item_id ORDER BY in_segment DESC NULLS LAST, score DESC, r.item_id LIMIT %s",
                [*params, *params, country, country, platform, platform,
                 tenant_id, game_id, since, query.category, query.category, query.min_price,
                 query.min_price, query.max_price, query.max_price, limit])
            rows: list[Any] = await cur.fetchall()
        return [Pick(row[0], round(float(row[2] if row[2] is not None else row[1]), 6), "popular") for row in rows]
