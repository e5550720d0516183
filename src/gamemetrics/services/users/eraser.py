"""The platform's own eraser: the player's events, rollups, profile and dead letters in the
database, and their messages on the embedded bus.

In one transaction under the erasure lock it leaves the tombstone and deletes the player's rows;
then it deletes their messages from the embedded bus (Kafka keeps them until its retention ends,
which the state says). Each step is idempotent, so a request delivered twice is erased twice,
harmlessly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.envelope import partition_key
from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import StoreState
from gamemetrics.gdpr.tombstones import ERASURE_LOCK
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Bus, Erasable
from gamemetrics.services.users.holdings import delete_player, names_player


class StoreEraser:
    """Erases a player from the platform's database and its embedded bus."""

    # Its group stays `gdpr-erasure`, the group that holds the committed positions of the
    # requests this eraser has handled so far.
    name = "erasure"
    stores = ("events", "rollups", "profile", "dead_letters", "bus")

    def __init__(self, pool: AsyncConnectionPool, bus: Bus, *, bus_retention: timedelta) -> None:
        self._pool = pool
        self._bus = bus
        self._bus_retention = bus_retention

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        """Tombstone and delete the player's rows, then their messages on the bus."""
        tenant, game, player = request.tenant_id, request.game_id, request.player_id
        async with self._pool.connection() as conn, conn.transaction():
            # Exclusive: processor batches already writing finish first (and are deleted with the
            # rest); later ones wait for this commit and then see the tombstone.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK,))
            await conn.execute(
                "INSERT INTO erased_players (player_hash, tenant_id, game_id) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING", (player_hash, tenant, game),
            )
            counts = await delete_player(conn, tenant, game, player)
        states = {store: StoreState("erased", rows=n) for store, n in counts.items()}
        states["bus"] = await self._erase_bus(request)
        return states

    async def _erase_bus(self, request: ErasureRequest) -> StoreState:
        if not isinstance(self._bus, Erasable):
            expires = request.requested_at + self._bus_retention
            return StoreState("expiring", expires_at=expires.isoformat(),
                              note="the Kafka topics delete the player's messages when their retention ends")
        tenant, game, player = request.tenant_id, request.game_id, request.player_id
        key = partition_key(tenant, player)
        removed = await self._bus.erase(RAW_EVENTS, key) + await self._bus.erase(PROCESSED_EVENTS, key)
        removed += await self._bus.erase(EVENTS_DLQ, tenant.bytes, names_player(game, player))
        return StoreState("erased", rows=removed)
