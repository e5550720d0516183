"""Interactions: the events that name an item, kept one row per event; what each player owns;
the weight each event type carries in a game's training."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.processed import ProcessedEvent
from gamemetrics.gdpr.tombstones import ERASURE_LOCK, Tombstones
from gamemetrics.services.recommender.catalogue import tenant_transaction

ITEM_EVENTS = ("purchase", "item_acquired", "item_used")
OWNING_EVENTS = ("purchase", "item_acquired")
# A purchase says most about what a player wants, an acquisition less, a use least.
DEFAULT_WEIGHTS: Mapping[str, float] = {"purchase": 4.0, "item_acquired": 2.0, "item_used": 1.0}


@dataclass(frozen=True, slots=True)
class Interaction:
    """One event naming an item."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    event_id: uuid.UUID
    player_id: str
    item_id: str
    event_type: str
    at: datetime
    country: str | None
    platform: str | None


@dataclass(frozen=True, slots=True)
class PlayerHistory:
    """What serving reads of a player: the items they own, and the country and platform of their
    latest interaction (None when the platform has not seen them)."""

    owned: list[str]
    country: str | None
    platform: str | None


class _Item(msgspec.Struct):
    item_id: str | None = None


_item = msgspec.json.Decoder(_Item)


def interactions_of(events: Iterable[ProcessedEvent]) -> list[Interaction]:
    """The interactions among processed events: those of an item event type that name an item."""
    found = []
    for event in events:
        if event.event_type not in ITEM_EVENTS:
            continue
        try:
            item_id = _item.decode(event.properties).item_id
        except msgspec.DecodeError:  # validated upstream; a property of another shape names no item
            continue
        if item_id:
            found.append(Interaction(event.tenant_id, event.game_id, event.event_id, event.player_id, item_id,
                                     event.event_type, event.timestamp, event.country, event.platform))
    return found


def weights_sql(weights: Mapping[str, float]) -> tuple[str, list[object]]:
    """A SQL expression of an interaction's weight (on `event_type`) and its parameters."""
    cases = " ".join("WHEN %s THEN %s::real" for _ in weights)
    params: list[object] = [v for pair in weights.items() for v in pair]
    return f"(CASE event_type {cases} ELSE 0 END)", params


class Interactions:
    """The interactions, ownership and weights in the database."""

    def __init__(self, pool: AsyncConnectionPool, tombstones: Tombstones | None = None) -> None:
        self._pool = pool
        self._tombstones = tombstones

    async def add(self, found: list[Interaction]) -> int:
        """Keep the interactions (each event once) and learn their items; how many were new. An
        erased player's interactions (published before their erasure, read after it) are dropped."""
        if not found:
            return 0
        async with self._pool.connection() as conn, conn.transaction():
            if self._tombstones is not None:
                # Shared: an erasure (exclusive) waits for this batch, and later batches see its tombstone.
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK,))
                found = await self._living(conn, found, self._tombstones)
                if not found:
                    return 0
            rows = [(i.tenant_id, i.event_id, i.game_id, i.player_id, i.item_id, i.event_type, i.at, i.country,
                     i.platform) for i in found]
            cur = await conn.execute(
                "WITH given AS (SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::text[],"
                " %s::text[], %s::timestamptz[], %s::text[], %s::text[])"
                " AS g(tenant_id, event_id, game_id, player_id, item_id, event_type, at, country, platform)),"
                " kept AS (INSERT INTO rec_interactions (tenant_id, event_id, game_id, player_id, item_id,"
                " event_type, at, country, platform) SELECT * FROM given ON CONFLICT DO NOTHING RETURNING 1),"
                " items AS (INSERT INTO rec_items (tenant_id, game_id, item_id)"
                " SELECT DISTINCT tenant_id, game_id, item_id FROM given ON CONFLICT DO NOTHING)"
                " SELECT count(*) FROM kept",
                [list(column) for column in zip(*rows, strict=True)],
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    async def _living(conn: AsyncConnection, found: list[Interaction], tombstones: Tombstones) -> list[Interaction]:
        hashes = {(i.tenant_id, i.game_id, i.player_id): tombstones.player_hash(i.tenant_id, i.game_id, i.player_id)
                  for i in found}
        cur = await conn.execute("SELECT player_hash FROM erased_players WHERE player_hash = ANY(%s)",
                                 (list(hashes.values()),))
        gone = {bytes(row[0]) for row in await cur.fetchall()}
        if not gone:
            return found
        return [i for i in found if hashes[(i.tenant_id, i.game_id, i.player_id)] not in gone]

    async def player(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str) -> PlayerHistory:
        """What the player owns up to now, and their segment, in one read of their rows."""
        # Pipelined: the transaction, its tenant, the read and the commit go to the server in one
        # round trip rather than four; every uncached answer waits for this one.
        async with self._pool.connection() as conn, conn.pipeline():
            async with conn.transaction():
                await tenant_transaction(conn, tenant_id)
                cur = await conn.execute(
                    "SELECT coalesce(array_agg(DISTINCT item_id) FILTER (WHERE event_type = ANY(%s)), '{}'),"
                    " (array_agg(country ORDER BY at DESC))[1], (array_agg(platform ORDER BY at DESC))[1]"
                    " FROM rec_interactions WHERE tenant_id = %s AND game_id = %s AND player_id = %s",
                    (list(OWNING_EVENTS), tenant_id, game_id, player_id))
            row = await cur.fetchone()
        assert row is not None  # an aggregate answers one row
        return PlayerHistory(sorted(row[0]), row[1], row[2])

    async def weights(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> dict[str, float]:
        """The game's weight of each item event type: its own where set, the defaults elsewhere."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute("SELECT event_type, weight FROM rec_weights WHERE tenant_id = %s AND game_id = %s",
                                     (tenant_id, game_id))
            return {**DEFAULT_WEIGHTS, **{row[0]: float(row[1]) for row in await cur.fetchall()}}

    async def set_weights(self, tenant_id: uuid.UUID, game_id: uuid.UUID, weights: Mapping[str, float]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            for event_type, weight in weights.items():
                await conn.execute(
                    "INSERT INTO rec_weights (tenant_id, game_id, event_type, weight) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (tenant_id, game_id, event_type) DO UPDATE SET weight = excluded.weight",
                    (tenant_id, game_id, event_type, weight))

    async def since(self, tenant_id: uuid.UUID, game_id: uuid.UUID, after: datetime | None) -> int:
        """Interactions of the game stored after `after` (every one when None)."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute(
                "SELECT count(*) FROM rec_interactions WHERE tenant_id = %s AND game_id = %s"
                " AND (%s::timestamptz IS NULL OR stored_at > %s)", (tenant_id, game_id, after, after))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def first_stored_after(self, tenant_id: uuid.UUID, game_id: uuid.UUID,
                                 after: datetime | None) -> datetime | None:
        """When the game's first interaction stored after `after` (of all when None) was stored."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute(
                "SELECT min(stored_at) FROM rec_interactions WHERE tenant_id = %s AND game_id = %s"
                " AND (%s::timestamptz IS NULL OR stored_at > %s)", (tenant_id, game_id, after, after))
            row = await cur.fetchone()
        return row[0] if row else None

    async def games(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(tenant, game) of every game with interactions."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT tenant_id, game_id FROM rec_items")
            return [(row[0], row[1]) for row in await cur.fetchall()]
