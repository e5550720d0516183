"""Versions of a game's trained model: their vectors in the Vectors port, their rows in the
database, and the switch that makes a new version the one served."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from gamemetrics.ports.vectors import Point, Scalar, Vectors, Where
from gamemetrics.services.recommender.catalogue import Catalogue, tenant_transaction
from gamemetrics.services.recommender.factors import Factors

UPSERT_BATCH = 1_000
# How long a process trusts the active version it read; a switch made in this process is seen at once.
ACTIVE_TTL_SECONDS = 1.0


def items_collection(size: int) -> str:
    return f"rec_items_{size}"


def players_collection(size: int) -> str:
    return f"rec_players_{size}"


def point_name(game_id: uuid.UUID, version: int, name: str) -> str:
    """Points of every game and version share a collection; the name keeps them apart."""
    return f"{game_id}:{version}:{name}"


@dataclass(frozen=True, slots=True)
class ActiveModel:
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    version: int
    size: int

    def where(self) -> dict[str, Scalar]:
        """The payload filter of this version's points."""
        return {"tenant": str(self.tenant_id), "game": str(self.game_id), "version": self.version}

    @property
    def items(self) -> str:
        return items_collection(self.size)

    @property
    def players(self) -> str:
        return players_collection(self.size)

    def name(self, id_: str) -> str:
        return point_name(self.game_id, self.version, id_)


def item_payload(model: ActiveModel, item_id: str, described: dict[str, Any] | None) -> dict[str, Scalar]:
    """What filters read of an item: tenant, game, version, category, price, availability."""
    payload: dict[str, Scalar] = {**model.where(), "item": item_id, "available": True}
    if described is not None:
        payload["available"] = bool(described["available"])
        if described["category"] is not None:
            payload["category"] = str(described["category"])
        if described["price"] is not None:
            payload["price"] = float(described["price"])
    return payload


class Models:
    """The model versions of every game."""

    def __init__(self, pool: AsyncConnectionPool, vectors: Vectors) -> None:
        self._pool = pool
        self._vectors = vectors
        self._active: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, ActiveModel | None]] = {}
        self._reading: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Future[ActiveModel | None]] = {}

    async def active(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> ActiveModel | None:
        """The version served now, or None before the first training."""
        key = (tenant_id, game_id)
        kept = self._active.get(key)
        if kept is not None and time.monotonic() - kept[0] < ACTIVE_TTL_SECONDS:
            return kept[1]
        # One read per game at a time: the requests arriving meanwhile share it.
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read_active(tenant_id, game_id))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    async def _read_active(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> ActiveModel | None:
        started = time.monotonic()
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute("SELECT version, factors FROM rec_models WHERE tenant_id = %s AND game_id = %s"
                                     " AND active", (tenant_id, game_id))
            row = await cur.fetchone()
        model = ActiveModel(tenant_id, game_id, int(row[0]), int(row[1])) if row else None
        kept = self._active.get((tenant_id, game_id))
        if kept is None or kept[0] <= started:  # a switch made here while reading is newer than what was read
            self._active[(tenant_id, game_id)] = (started, model)
        return model

    async def warm(self, games: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> list[str]:
        """Read the collections of the games' active versions once, so that the vector store's first
        read of each (local mode then loads the collection into memory) is not a request's; their names."""
        collections: set[str] = set()
        for tenant_id, game_id in games:
            model = await self.active(tenant_id, game_id)
            if model is not None:
                collections |= {model.items, model.players}
        for collection in sorted(collections):
            await self._vectors.vectors(collection, [])
        return sorted(collections)

    async def kept(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> list[ActiveModel]:
        """The versions whose vectors are kept (the active one and the one before it)."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute("SELECT version, factors FROM rec_models WHERE tenant_id = %s AND game_id = %s"
                                     " ORDER BY version DESC LIMIT 2", (tenant_id, game_id))
            return [ActiveModel(tenant_id, game_id, int(r[0]), int(r[1])) for r in await cur.fetchall()]

    async def last_trained(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> Any:
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute("SELECT max(trained_at) FROM rec_models WHERE tenant_id = %s AND game_id = %s",
                                     (tenant_id, game_id))
            row = await cur.fetchone()
        return row[0] if row else None

    async def publish(self, tenant_id: uuid.UUID, game_id: uuid.UUID, factors: Factors, *, algorithm: str,
                      interactions: int, read_at: datetime, progress: Any = None) -> ActiveModel:
        """Store a new version's vectors, then switch serving to it in one transaction; the version
        before stays searchable until the next switch, for requests that read it a moment ago."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"rec-model:{game_id}",))
            cur = await conn.execute(
                "INSERT INTO rec_models (tenant_id, game_id, version, algorithm, factors, players, items,"
                " interactions, trained_at) SELECT %s, %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s"
                " FROM rec_models WHERE tenant_id = %s AND game_id = %s RETURNING version",
                (tenant_id, game_id, algorithm, factors.size, len(factors.players), len(factors.items),
                 interactions, read_at, tenant_id, game_id))
            row = await cur.fetchone()
            assert row is not None
            described = await Catalogue.payloads(conn, tenant_id, game_id, factors.items)
        model = ActiveModel(tenant_id, game_id, int(row[0]), factors.size)
        await self._vectors.ensure_collection(model.items, factors.size, "dot")
        await self._vectors.ensure_collection(model.players, factors.size, "dot")
        items = [Point(model.name(item), factors.item_vectors[i].tolist(),
                       item_payload(model, item, described.get(item))) for i, item in enumerate(factors.items)]
        players = [Point(model.name(player), factors.player_vectors[i].tolist(),
                         {**model.where(), "player": player}) for i, player in enumerate(factors.players)]
        points: Sequence[tuple[str, list[Point]]] = [(model.items, items), (model.players, players)]
        done, total = 0, len(items) + len(players)
        for collection, batch_of in points:
            for start in range(0, len(batch_of), UPSERT_BATCH):
                batch = batch_of[start:start + UPSERT_BATCH]
                await self._vectors.upsert(collection, batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        await self._switch(model)
        return model

    async def _switch(self, model: ActiveModel) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, model.tenant_id)
            await conn.execute("UPDATE rec_models SET active = false WHERE tenant_id = %s AND game_id = %s AND active",
                               (model.tenant_id, model.game_id))
            await conn.execute("UPDATE rec_models SET active = true WHERE tenant_id = %s AND game_id = %s"
                               " AND version = %s", (model.tenant_id, model.game_id, model.version))
            cur = await conn.execute(
                "SELECT version, factors FROM rec_models WHERE tenant_id = %s AND game_id = %s AND version < %s - 1",
                (model.tenant_id, model.game_id, model.version))
            stale = [ActiveModel(model.tenant_id, model.game_id, int(r[0]), int(r[1])) for r in await cur.fetchall()]
        self._active[(model.tenant_id, model.game_id)] = (time.monotonic(), model)
        for old in stale:
            await self._vectors.delete(old.items, where=old.where())
            await self._vectors.delete(old.players, where=old.where())

    async def describe(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str,
                       described: dict[str, Any] | None) -> None:
        """Carry a catalogue change into the kept versions' item payloads."""
        for model in await self.kept(tenant_id, game_id):
            payload = item_payload(model, item_id, described)
            where: Where = {**model.where(), "item": item_id}
            await self._vectors.set_payload(model.items, payload, where=where)
