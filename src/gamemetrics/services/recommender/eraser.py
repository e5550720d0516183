"""Erasing a player from the recommender: their vectors, interactions, ownership, feedback and cached answers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import StoreState
from gamemetrics.gdpr.tombstones import ERASURE_LOCK
from gamemetrics.ports.cache import Cache
from gamemetrics.ports.vectors import Vectors
from gamemetrics.services.recommender.catalogue import tenant_transaction
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.serving import generation_key


class VectorsEraser:
    """Confirms the `vectors` store: rows first, then every kept version's player vector, then the
    answers (a new generation makes the kept ones unreachable until they expire)."""

    name = "recommender"
    stores = ("vectors",)

    def __init__(self, pool: AsyncConnectionPool, models: Models, vectors: Vectors, cache: Cache,
                 generation_seconds: float) -> None:
        self._pool = pool
        self._models = models
        self._vectors = vectors
        self._cache = cache
        self._ttl = generation_seconds

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        tenant, game, player = request.tenant_id, request.game_id, request.player_id
        async with self._pool.connection() as conn, conn.transaction():
            # Exclusive, with the tombstone left here too (whichever eraser runs first): interaction
            # batches already writing finish first, later ones see the tombstone and drop the player.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK,))
            await conn.execute("INSERT INTO erased_players (player_hash, tenant_id, game_id) VALUES (%s, %s, %s)"
                               " ON CONFLICT DO NOTHING", (player_hash, tenant, game))
            await tenant_transaction(conn, tenant)
            rows = 0
            for table in ("rec_interactions", "rec_feedback"):
                cur = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s AND game_id = %s"
                                         " AND player_id = %s", (tenant, game, player))
                rows += cur.rowcount
        for model in await self._models.kept(tenant, game):
            await self._vectors.delete(model.players, where={"tenant": str(tenant), "game": str(game),
                                                             "player": player})
        await self._cache.set(generation_key(tenant, game, player), uuid.uuid4().hex.encode(), self._ttl)
        return {"vectors": StoreState("erased", rows=rows)}
