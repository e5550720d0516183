"""`/v1/admin/retention`: the calling token's tenant's retention policies (scope `admin`).

GET answers the tenant's policy and every game's that differs; PUT changes the tenant's (or, with
`game_id`, one game's) and writes the change to the audit log in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.services.retention.policy import PolicyError, PolicyStore
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body
from gamemetrics.web.responses import json_response

SCOPE = "admin"


class PolicyRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, tenancy: TenancyStore, audit: AuditLog) -> None:
        self._pool = pool
        self._guard = guard
        self._tenancy = tenancy
        self._audit = audit
        self._policies = PolicyStore(pool)

    def routes(self) -> list[Route]:
        return [Route("/v1/admin/retention", self.policy, methods=["GET", "PUT"])]

    async def policy(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        tenant = principal.tenant_id
        if request.method == "GET":
            games = [{"game_id": game, **policy.as_dict()}
                     for _, game, policy in await self._policies.listed(tenant) if game is not None]
            return json_response({"tenant_id": tenant, **(await self._policies.effective(tenant)).as_dict(),
                                  "games": games})
        body = await json_body(request)
        if not isinstance(body, dict) or not body:
            raise ApiError(400, 'send a JSON object of the days to change, e.g. {"events_online_days": 90}')
        changes: dict[str, Any] = dict(body)
        game_id = await self._game(tenant, changes.pop("game_id", None))
        async with self._pool.connection() as conn, conn.transaction():
            try:
                policy = await self._policies.put(conn, tenant, game_id, changes)
            except PolicyError as exc:
                raise ApiError(422, str(exc)) from None
            await self._audit.append(conn, AuditEntry(
                f"client:{principal.subject}", "retention.policy_set", tenant,
                str(game_id) if game_id else None, {**policy.as_dict(), "token": principal.token_id}))
        return json_response({"tenant_id": tenant, "game_id": game_id, **policy.as_dict()})

    async def _game(self, tenant: uuid.UUID, value: object) -> uuid.UUID | None:
        if value is None:
            return None
        try:
            game_id = uuid.UUID(str(value))
        except ValueError:
            raise ApiError(400, f"game_id must be a UUID, not {value!r}") from None
        if not await self._tenancy.game_of_tenant(tenant, game_id):
            raise ApiError(404, f"no game {game_id} in this tenant")
        return game_id
