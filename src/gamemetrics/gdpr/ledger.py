"""The `erasures` table: each request with its expected stores, their confirmations, completion.

Completion is decided in the confirming transaction, which holds the erasure's row lock from its
`UPDATE`: of two erasers confirming at once, the second sees the first's confirmation, so exactly
one of them finds nothing pending and completes the erasure.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection

from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import PENDING, StoreState


async def record_request(conn: AsyncConnection[Any], erasure: ErasureRequest, player_hash: bytes,
                         stores: Sequence[str]) -> None:
    """Record the erasure with every expected store pending, unless it is recorded already."""
    pending = msgspec.json.encode(dict.fromkeys(stores, PENDING)).decode()
    await conn.execute(
        "INSERT INTO erasures (erasure_id, tenant_id, game_id, player_hash, requested_by, requested_at, stores)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (erasure_id) DO NOTHING",
        (erasure.erasure_id, erasure.tenant_id, erasure.game_id, player_hash, erasure.requested_by,
         erasure.requested_at, pending),
    )


async def confirm(conn: AsyncConnection[Any], erasure_id: uuid.UUID, states: Mapping[str, StoreState]) -> None:
    """Set the state of the given stores, stamped with the time of confirmation."""
    at = datetime.now(UTC).isoformat()
    update = {store: {**msgspec.to_builtins(state), "at": at} for store, state in states.items()}
    await conn.execute("UPDATE erasures SET stores = stores || %s::jsonb WHERE erasure_id = %s",
                       (msgspec.json.encode(update).decode(), erasure_id))


@dataclass(frozen=True, slots=True)
class Completion:
    """An erasure just completed: how long after its request, and every store's state."""

    seconds: float
    stores: dict[str, Any]

    def rows(self) -> dict[str, int]:
        """Rows erased per store, for the stores that count them."""
        return {s: v["rows"] for s, v in self.stores.items() if isinstance(v.get("rows"), int)}


async def complete(conn: AsyncConnection[Any], erasure_id: uuid.UUID) -> Completion | None:
    """Mark the erasure completed if no store is pending and it was not completed before."""
    cur = await conn.execute(
        "UPDATE erasures SET completed_at = now() WHERE erasure_id = %s AND completed_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM jsonb_each(stores) AS s(store, state) WHERE s.state->>'state' = 'pending')"
        " RETURNING extract(epoch FROM now() - requested_at)::float8, stores", (erasure_id,),
    )
    row = await cur.fetchone()
    return Completion(row[0], row[1]) if row is not None else None
