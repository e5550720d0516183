"""The admin REST API under `/v1/admin`: the calling token's tenant, its games, write keys and
OAuth2 clients, and its audit entries. Every route needs the `admin` scope; every creation and
revocation is written to the audit log in the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.auth.tokens import Principal
from gamemetrics.services.users.clients import ClientStore, InvalidScopes
from gamemetrics.services.users.http import actor_of
from gamemetrics.tenancy.store import NotFound, TenancyStore
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_uuid
from gamemetrics.web.responses import json_response

SCOPE = "admin"
T = Any


class AdminRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, tenancy: TenancyStore, clients: ClientStore,
                 audit: AuditLog) -> None:
        self._pool = pool
        self._guard = guard
        self._tenancy = tenancy
        self._clients = clients
        self._audit = audit

    async def _audited(self, principal: Principal, action: str, subject: Callable[[Any], str],
                       change: Callable[[AsyncConnection], Awaitable[T]], **details: Any) -> T:
        """Run `change` and append its audit entry in one transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            try:
                result = await change(conn)
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            await self._audit.append(conn, AuditEntry(
                actor_of(principal), action, principal.tenant_id, subject(result),
                {**details, "token": principal.token_id}))
        return result

    async def tenant(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT name, created_at FROM tenants WHERE tenant_id = %s",
                                     (principal.tenant_id,))
            row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "the token's tenant does not exist")
        return json_response({"tenant_id": principal.tenant_id, "name": row[0], "created_at": row[1]})

    async def games(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        if request.method == "GET":
            return json_response({"games": await self._tenancy.games(principal.tenant_id)})
        body = await json_body(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise ApiError(400, 'send {"name": "..."} (1-200 characters)')
        game_id = await self._audited(
            principal, "game.created", str,
            lambda conn: self._tenancy.create_game(principal.tenant_id, name, conn=conn), name=name)
        return json_response({"tenant_id": principal.tenant_id, "game_id": game_id, "name": name}, 201)

    async def write_keys(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SCOPE)
        if request.method == "GET":
            return json_response({"write_keys": await self._tenancy.write_keys(principal.tenant_id, game_id)})
        body = await json_body(request)
        body = body if isinstance(body, dict) else {}
        environment, allow_import = body.get("environment", "production"), body.get("allow_import", False)
        if not isinstance(environment, str) or not environment.isidentifier() or not isinstance(allow_import, bool):
            raise ApiError(400, 'send {"environment": "production", "allow_import": false} (environment: letters,'
                                ' digits and _)')
        created = await self._audited(
            principal, "write_key.created", lambda c: str(c.key_id),
            lambda conn: self._tenancy.create_write_key(game_id, environment=environment, allow_import=allow_import,
                                                        conn=conn),
            game_id=str(game_id), environment=environment, allow_import=allow_import)
        return json_response({"tenant_id": created.tenant_id, "game_id": created.game_id, "key_id": created.key_id,
                              "write_key": created.write_key}, 201, {"Cache-Control": "no-store"})

    async def revoke_write_key(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        key_id = path_uuid(request, "key_id")
        await self._audited(principal, "write_key.revoked", lambda _: str(key_id),
                            lambda conn: self._tenancy.revoke_write_key(key_id, tenant_id=principal.tenant_id,
                                                                        conn=conn))
        return json_response({"key_id": key_id, "revoked": True})

    async def clients(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        if request.method == "GET":
            return json_response({"clients": await self._clients.list(principal.tenant_id)})
        body = await json_body(request)
        body = body if isinstance(body, dict) else {}
        scopes, name = body.get("scopes"), body.get("name", "client")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes) or not isinstance(name, str):
            raise ApiError(400, 'send {"name": "...", "scopes": ["analytics:read", ...]}')
        try:
            created = await self._audited(
                principal, "client.created", lambda c: c.client_id,
                lambda conn: self._clients.create(conn, principal.tenant_id, scopes, name[:200]),
                scopes=sorted(set(scopes)))
        except InvalidScopes as exc:
            raise ApiError(400, str(exc)) from None
        return json_response({"client_id": created.client_id, "client_secret": created.client_secret,
                              "tenant_id": created.tenant_id, "scopes": created.scopes, "name": created.name},
                             201, {"Cache-Control": "no-store"})

    async def revoke_client(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        client_id = request.path_params["client_id"]
        await self._audited(principal, "client.revoked", lambda _: client_id,
                            lambda conn: self._clients.revoke(conn, client_id, tenant_id=principal.tenant_id))
        return json_response({"client_id": client_id, "revoked": True})

    async def audit(self, request: Request) -> Response:
        """The tenant's audit entries after `after` (a sequence number), oldest first, at most 500."""
        principal = await self._guard(request, SCOPE)
        try:
            after = int(request.query_params.get("after", "0"))
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 500)
        except ValueError:
            raise ApiError(400, "after and limit are integers") from None
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, at, actor, action, subject, details FROM audit_log WHERE tenant_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s", (principal.tenant_id, after, limit),
            )
            names = ("seq", "at", "actor", "action", "subject", "details")
            entries = [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
        return json_response({"entries": entries, "next": entries[-1]["seq"] if entries else after})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/admin/tenant", self.tenant, methods=["GET"]),
            Route("/v1/admin/games", self.games, methods=["GET", "POST"]),
            Route("/v1/admin/games/{game_id}/write-keys", self.write_keys, methods=["GET", "POST"]),
            Route("/v1/admin/write-keys/{key_id}", self.revoke_write_key, methods=["DELETE"]),
            Route("/v1/admin/clients", self.clients, methods=["GET", "POST"]),
            Route("/v1/admin/clients/{client_id}", self.revoke_client, methods=["DELETE"]),
            Route("/v1/admin/audit", self.audit, methods=["GET"]),
        ]
