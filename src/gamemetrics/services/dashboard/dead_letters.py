"""The dead letters of a tenant's game, grouped by reason, and their replay onto `player.events.raw`.

Reads and the replay marker run in a transaction that takes the analytics role and names the
operator's tenant, so row-level security keeps every other tenant's letters out. A replay first
claims the letter (`dead_letter_replays`, one row per letter), then sends its original bytes back
to the raw topic, then commits: a letter is sent at most once per successful claim, and the
processor's (tenant, event id) uniqueness stores the event once even if a send is ever repeated.
A replayed event is received again at the time of its replay (see `replay_message`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.ports.bus import RAW_EVENTS, Message, Producer

_envelope = msgspec.json.Decoder(RawEnvelope)
# Reasons name the value they refused (a timestamp, a number); grouped without them, letters of one
# cause fall into one group.
KIND = (r"regexp_replace(regexp_replace(d.reason, '\d{4}-\d\d-\d\dT[0-9:.]+(\+00:00|Z)?', '<time>', 'g'),"
        r" '\m\d+(\.\d+)?\M', 'N', 'g')")


class NotReplayable(ValueError):
    """A letter that cannot be replayed; the message says why."""


@dataclass(frozen=True, slots=True)
class Reason:
    reason: str
    letters: int
    replayed: int
    last_at: datetime


@dataclass(frozen=True, slots=True)
class Letter:
    letter_id: int
    event_id: str | None
    reason: str
    created_at: datetime
    payload: str
    replayed_at: datetime | None
    replayed_by: str | None


class DeadLetterStore:
    """A tenant's dead letters, read and replayed under row-level security."""

    def __init__(self, pool: AsyncConnectionPool, producer: Producer, *, role: str) -> None:
        self._pool = pool
        self._producer = producer
        self._role = role

    @asynccontextmanager
    async def _tenant(self, tenant_id: uuid.UUID) -> AsyncIterator[AsyncConnection[Any]]:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('role', %s, true), set_config('gamemetrics.tenant_id', %s, true)",
                               (self._role, str(tenant_id)))
            yield conn

    async def reasons(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> list[Reason]:
        """Every kind of reason of the game's letters with how many, how many replayed, and the latest."""
        async with self._tenant(tenant_id) as conn:
            cur = await conn.execute(
                f"SELECT {KIND} AS kind, count(*), count(r.letter_id), max(d.created_at) FROM dead_letters d"
                " LEFT JOIN dead_letter_replays r ON r.letter_id = d.id"
                " WHERE d.tenant_id = %s AND d.game_id = %s GROUP BY kind ORDER BY count(*) DESC, kind"
                " LIMIT 200", (tenant_id, game_id))
            return [Reason(*row) for row in await cur.fetchall()]

    async def letters(self, tenant_id: uuid.UUID, game_id: uuid.UUID, reason: str, limit: int = 100) -> list[Letter]:
        """The newest letters of one kind of reason (as `reasons` names it), with their original bytes."""
        async with self._tenant(tenant_id) as conn:
            cur = await conn.execute(
                "SELECT d.id, d.event_id, d.reason, d.created_at, d.payload, r.replayed_at, r.replayed_by"
                " FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.letter_id = d.id"
                f" WHERE d.tenant_id = %s AND d.game_id = %s AND {KIND} = %s ORDER BY d.id DESC LIMIT %s",
                (tenant_id, game_id, reason, limit))
            return [Letter(r[0], r[1], r[2], r[3], bytes(r[4]).decode("utf-8", "replace"), r[5], r[6])
                    for r in await cur.fetchall()]

    async def replay(self, tenant_id: uuid.UUID, game_id: uuid.UUID, letter_ids: list[int], actor: str) -> int:
        """Send the chosen letters back to the raw topic, each once; how many were sent now."""
        async with self._tenant(tenant_id) as conn:
            # The claim: a letter claimed by another replay (even one still running) is skipped,
            # since its row conflicts with the one committed or waiting before it.
            cur = await conn.execute(
                "WITH claimed AS (INSERT INTO dead_letter_replays (letter_id, tenant_id, replayed_by)"
                "  SELECT d.id, d.tenant_id, %s FROM dead_letters d WHERE d.tenant_id = %s AND d.game_id = %s"
                "  AND d.id = ANY(%s) ON CONFLICT (letter_id) DO NOTHING RETURNING letter_id)"
                " SELECT d.id, d.payload FROM dead_letters d JOIN claimed c ON c.letter_id = d.id ORDER BY d.id",
                (actor, tenant_id, game_id, letter_ids))
            rows = await cur.fetchall()
            messages = [replay_message(bytes(payload), tenant_id, game_id) for _, payload in rows]
            if messages:
                await self._producer.send(RAW_EVENTS, messages)
        return len(messages)


def replay_message(payload: bytes, tenant_id: uuid.UUID, game_id: uuid.UUID, now: datetime | None = None) -> Message:
    """The raw-topic message of a letter's original event, received again now, keyed by tenant and player.

    The envelope is stamped with the replay's time: the window of late and future events is
    measured from receipt, and a replay is a new receipt of the same event (same id, same bytes)."""
    try:
        envelope = _envelope.decode(payload)
        event = msgspec.json.decode(envelope.event)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NotReplayable(f"its bytes are not an event envelope ({exc}); it cannot be replayed") from None
    if envelope.tenant_id != tenant_id or envelope.game_id != game_id:
        raise NotReplayable("its envelope names another game")
    player = event.get("player_id") if isinstance(event, dict) else None
    if not isinstance(player, str):
        raise NotReplayable("its event has no player id; it cannot be replayed")
    again = RawEnvelope(tenant_id, game_id, now or datetime.now(UTC), envelope.event, envelope.source,
                        envelope.schema_version)
    return Message(partition_key(tenant_id, player), msgspec.json.encode(again))
