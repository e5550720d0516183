"""The dead letters of a tenant's game, grouped by reason, and their replay onto `player.events.raw`.

The letters are read through the analytics API (`deadLetterReasons`, `deadLetters`) with the
operator's token. The replay runs in a transaction that takes the analytics role and names the
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
REASONS_QUERY = "query ($g: ID!) { deadLetterReasons(gameId: $g) { reason letters replayed lastAt } }"
LETTERS_QUERY = """query ($g: ID!, $reason: String!, $limit: Int!) {
  deadLetters(gameId: $g, reason: $reason, limit: $limit) {
    letterId eventId reason createdAt payload replayedAt replayedBy
  }
}"""


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


def reasons_of(data: dict[str, Any]) -> list[Reason]:
    """The kinds of reason of the analytics API's `deadLetterReasons` answer."""
    return [Reason(str(r["reason"]), int(r["letters"]), int(r["replayed"]), datetime.fromisoformat(r["lastAt"]))
            for r in data.get("deadLetterReasons") or []]


def letters_of(data: dict[str, Any]) -> list[Letter]:
    """The letters of the analytics API's `deadLetters` answer."""
    return [Letter(int(r["letterId"]), r["eventId"], str(r["reason"]), datetime.fromisoformat(r["createdAt"]),
                   str(r["payload"]), datetime.fromisoformat(r["replayedAt"]) if r["replayedAt"] else None,
                   r["replayedBy"]) for r in data.get("deadLetters") or []]


class DeadLetterStore:
    """Replays a tenant's dead letters under row-level security."""

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
