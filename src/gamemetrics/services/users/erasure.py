"""Erasure (GDPR Art. 17): `DELETE /v1/games/{game_id}/players/{player_id}` answers 202 with an
erasure id; the request travels on `gdpr.requests` to the erasure worker, which deletes the
player from every store that holds them and confirms store by store; `GET /v1/erasures/{id}`
shows where it stands.

The worker, in one transaction under the erasure lock: leaves the tombstone, deletes events,
rollups, profile and dead letters. Then it deletes the player's messages from the embedded bus
(Kafka keeps them until its retention ends, which the state says). Each step is idempotent, so a
request delivered twice is erased twice, harmlessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.events.envelope import partition_key
from gamemetrics.gdpr.messages import ErasureRequest, RequestCodec
from gamemetrics.gdpr.tombstones import ERASURE_LOCK, Tombstones
from gamemetrics.ports.bus import EVENTS_DLQ, GDPR_REQUESTS, PROCESSED_EVENTS, RAW_EVENTS, Bus, Erasable, Record
from gamemetrics.services.users.holdings import delete_player, names_player
from gamemetrics.services.users.http import actor_of
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import path_player, path_uuid
from gamemetrics.web.responses import json_response

SCOPE = "gdpr:erase"
GROUP_ID = "gdpr-erasure"
STORES = ("events", "rollups", "profile", "dead_letters", "bus")
log = structlog.get_logger("erasure")


class ErasureRoutes:
    def __init__(self, pool: AsyncConnectionPool, bus: Bus, guard: Guard, tombstones: Tombstones,
                 codec: RequestCodec, audit: AuditLog) -> None:
        self._pool = pool
        self._producer = bus.producer()
        self._guard = guard
        self._tombstones = tombstones
        self._codec = codec
        self._audit = audit

    async def request(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SCOPE)
        player_id = path_player(request)
        erasure = ErasureRequest(uuid.uuid4(), principal.tenant_id, game_id, player_id, actor_of(principal),
                                 datetime.now(UTC))
        player_hash = self._tombstones.player_hash(principal.tenant_id, game_id, player_id)
        # On the bus first: once it is there the erasure happens even if this process dies now
        # (the worker records the request itself when it finds no row).
        await self._producer.send(GDPR_REQUESTS, [self._codec.encode(erasure, player_hash)])
        async with self._pool.connection() as conn, conn.transaction():
            await record_request(conn, erasure, player_hash)
            await self._audit.append(conn, AuditEntry(
                erasure.requested_by, "erasure.requested", principal.tenant_id, str(erasure.erasure_id),
                {"game_id": str(game_id), "player_hash": player_hash.hex(), "token": principal.token_id}))
        return json_response({"erasure_id": erasure.erasure_id, "state": "pending",
                              "status_url": f"/v1/erasures/{erasure.erasure_id}"}, 202,
                             {"Location": f"/v1/erasures/{erasure.erasure_id}"})

    async def status(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        erasure_id = path_uuid(request, "erasure_id")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT game_id, requested_by, requested_at, completed_at, stores FROM erasures"
                " WHERE erasure_id = %s AND tenant_id = %s", (erasure_id, principal.tenant_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApiError(404, f"no erasure {erasure_id} in this tenant")
        game_id, requested_by, requested_at, completed_at, stores = row
        return json_response({"erasure_id": erasure_id, "game_id": game_id,
                              "state": "completed" if completed_at else "pending", "requested_by": requested_by,
                              "requested_at": requested_at, "completed_at": completed_at, "stores": stores})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/games/{game_id}/players/{player_id}", self.request, methods=["DELETE"]),
            Route("/v1/erasures/{erasure_id}", self.status, methods=["GET"]),
        ]


async def record_request(conn: Any, erasure: ErasureRequest, player_hash: bytes) -> None:
    pending = msgspec.json.encode({store: {"state": "pending"} for store in STORES}).decode()
    await conn.execute(
        "INSERT INTO erasures (erasure_id, tenant_id, game_id, player_hash, requested_by, requested_at, stores)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (erasure_id) DO NOTHING",
        (erasure.erasure_id, erasure.tenant_id, erasure.game_id, player_hash, erasure.requested_by,
         erasure.requested_at, pending),
    )


class ErasureWorker:
    """Consumes `gdpr.requests` in the `gdpr-erasure` group: erases, confirms, then commits."""

    def __init__(self, pool: AsyncConnectionPool, bus: Bus, tombstones: Tombstones, codec: RequestCodec,
                 audit: AuditLog, *, bus_retention: timedelta, poll_timeout: float = 0.5) -> None:
        self._pool = pool
        self._bus = bus
        self._tombstones = tombstones
        self._codec = codec
        self._audit = audit
        self._bus_retention = bus_retention
        self._poll_timeout = poll_timeout
        self._consumer = bus.consumer(GROUP_ID, [GDPR_REQUESTS])

    async def run(self) -> None:
        """Erase until cancelled; after a failure, read again from the committed offsets."""
        backoff = 0.1
        try:
            while True:
                try:
                    records = await self._consumer.poll(50, self._poll_timeout)
                    for record in records:
                        await self.handle(record)
                    if records:
                        await self._consumer.commit(records)
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store or bus is away: the requests are read again
                    log.warning("erasure failed; retrying from committed offsets", error=str(exc), backoff_s=backoff)
                    await self._consumer.close()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            with contextlib.suppress(Exception):
                await self._consumer.close()

    async def handle(self, record: Record) -> None:
        try:
            erasure = self._codec.decode(record.value)
        except ValueError as exc:
            log.error("skipped an erasure request that cannot be read", topic=record.topic,
                      partition=record.partition, offset=record.offset, error=str(exc))
            return
        tenant, game, player = erasure.tenant_id, erasure.game_id, erasure.player_id
        if not 1 <= len(player) <= 256 or "\x00" in player:  # the route refuses these; a forged message may not
            log.error("skipped an erasure request for an impossible player id", erasure_id=str(erasure.erasure_id))
            return
        player_hash = self._tombstones.player_hash(tenant, game, player)
        async with self._pool.connection() as conn, conn.transaction():
            # Exclusive: processor batches already writing finish first (and are deleted with the
            # rest); later ones wait for this commit and then see the tombstone.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK,))
            await record_request(conn, erasure, player_hash)
            await conn.execute(
                "INSERT INTO erased_players (player_hash, tenant_id, game_id) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING", (player_hash, tenant, game),
            )
            counts = await delete_player(conn, tenant, game, player)
            await _confirm(conn, erasure.erasure_id, {s: {"state": "erased", "rows": n} for s, n in counts.items()})
        bus_state = await self._erase_bus(tenant, game, player, erasure.requested_at)
        async with self._pool.connection() as conn, conn.transaction():
            await _confirm(conn, erasure.erasure_id, {"bus": bus_state})
            cur = await conn.execute(
                "UPDATE erasures SET completed_at = now() WHERE erasure_id = %s AND completed_at IS NULL"
                " RETURNING extract(epoch FROM now() - requested_at)::float8", (erasure.erasure_id,),
            )
            done = await cur.fetchone()
            if done is not None:
                await self._audit.append(conn, AuditEntry(
                    "gdpr-erasure", "erasure.completed", tenant, str(erasure.erasure_id),
                    {"game_id": str(game), "player_hash": player_hash.hex(),
                     **{f"{s}_rows": n for s, n in counts.items()}}))
                log.info("player erased", erasure_id=str(erasure.erasure_id), tenant_id=str(tenant),
                         seconds=round(done[0], 3), **counts)

    async def _erase_bus(self, tenant: uuid.UUID, game: uuid.UUID, player: str,
                         requested_at: datetime) -> dict[str, Any]:
        if not isinstance(self._bus, Erasable):
            expires = requested_at + self._bus_retention
            return {"state": "expiring", "expires_at": expires.isoformat(),
                    "note": "the Kafka topics delete the player's messages when their retention ends"}
        key = partition_key(tenant, player)
        removed = await self._bus.erase(RAW_EVENTS, key) + await self._bus.erase(PROCESSED_EVENTS, key)
        removed += await self._bus.erase(EVENTS_DLQ, tenant.bytes, names_player(game, player))
        return {"state": "erased", "rows": removed}


async def _confirm(conn: Any, erasure_id: uuid.UUID, states: dict[str, dict[str, Any]]) -> None:
    at = datetime.now(UTC).isoformat()
    update = {store: {**state, "at": at} for store, state in states.items()}
    await conn.execute("UPDATE erasures SET stores = stores || %s::jsonb WHERE erasure_id = %s",
                       (msgspec.json.encode(update).decode(), erasure_id))
