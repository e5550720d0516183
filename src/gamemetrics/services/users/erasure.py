"""Erasure (GDPR Art. 17): `DELETE /v1/games/{game_id}/players/{player_id}` answers 202 with an
erasure id and records every expected store pending; the request travels on `gdpr.requests` to
each eraser (gdpr/consumer.py), which deletes the player from the stores it holds and confirms
them; `GET /v1/erasures/{id}` shows where it stands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.events.gdpr_requests import ErasureRequest, RequestCodec
from gamemetrics.gdpr.ledger import record_request
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.bus import GDPR_REQUESTS, Bus
from gamemetrics.services.users.http import actor_of
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import path_player, path_uuid
from gamemetrics.web.responses import json_response

SCOPE = "gdpr:erase"


class ErasureRoutes:
    def __init__(self, pool: AsyncConnectionPool, bus: Bus, guard: Guard, tombstones: Tombstones,
                 codec: RequestCodec, audit: AuditLog, stores: Sequence[str]) -> None:
        self._pool = pool
        self._stores = tuple(stores)  # every store an erasure waits for
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
        # (the erasers record the request themselves when they find no row).
        await self._producer.send(GDPR_REQUESTS, [self._codec.encode(erasure, player_hash)])
        async with self._pool.connection() as conn, conn.transaction():
            await record_request(conn, erasure, player_hash, self._stores)
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
