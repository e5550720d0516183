"""The tenant's operators under `/v1/admin/operators`: list, invite, change a role, disable and enable.

Every route needs the `admin` scope and acts on the token's tenant only: an operator of another
tenant is a 404 whatever id the path names. An invitation makes the operator with a one-time
password, answered once (only its argon2 hash is kept), for the admin to hand over. Every change is
written to the audit log in its own transaction. An admin cannot disable or demote themselves, so a
tenant never loses its last way in by a slip.
"""

from __future__ import annotations

import secrets
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.auth.tokens import Principal
from gamemetrics.services.users.http import actor_of
from gamemetrics.services.users.operators import TENANT_ROLES, OperatorRow, OperatorStore, TenantOperators
from gamemetrics.tenancy.store import NotFound
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_uuid
from gamemetrics.web.responses import json_response

SCOPE = "admin"
MAX_EMAIL = 320


def _shown(row: OperatorRow) -> dict[str, Any]:
    return {"operator_id": row.operator_id, "email": row.email, "role": row.role, "created_at": row.created_at,
            "disabled": row.disabled_at is not None, "disabled_at": row.disabled_at}


class OperatorAdminRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, store: OperatorStore, audit: AuditLog) -> None:
        self._pool = pool
        self._guard = guard
        self._store = store
        self._operators = TenantOperators()
        self._audit = audit

    def _entry(self, principal: Principal, action: str, subject: str, **details: Any) -> AuditEntry:
        return AuditEntry(actor_of(principal), action, principal.tenant_id, subject,
                          {**details, "token": principal.token_id})

    async def operators(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        if request.method == "GET":
            async with self._pool.connection() as conn:
                rows = await self._operators.list(conn, principal.tenant_id)
            return json_response({"operators": [_shown(r) for r in rows]})
        body = await json_body(request, max_bytes=4096)
        email, role = (body.get("email"), body.get("role", "analyst")) if isinstance(body, dict) else (None, None)
        if not isinstance(email, str) or "@" not in email.strip()[1:-1] or len(email) > MAX_EMAIL \
                or role not in TENANT_ROLES:
            raise ApiError(400, f'send {{"email": "name@studio.example", "role": "{TENANT_ROLES[1]}"}}'
                                f" (role: {' or '.join(TENANT_ROLES)})")
        password = secrets.token_urlsafe(18)
        async with self._pool.connection() as conn, conn.transaction():
            try:
                made = await self._store.create(conn, email, password, str(role), principal.tenant_id)
            except ValueError as exc:
                raise ApiError(409, str(exc)) from None
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            await self._audit.append(conn, self._entry(principal, "operator.invited", str(made.operator_id),
                                                       email=made.email, role=made.role))
        return json_response({"operator_id": made.operator_id, "email": made.email, "role": made.role,
                              "tenant_id": made.tenant_id, "password": password}, 201, {"Cache-Control": "no-store"})

    async def operator(self, request: Request) -> Response:
        principal = await self._guard(request, SCOPE)
        operator_id = path_uuid(request, "operator_id")
        body = await json_body(request, max_bytes=4096)
        role, disabled = (body.get("role"), body.get("disabled")) if isinstance(body, dict) else (None, None)
        if (role is None and disabled is None) or (role is not None and role not in TENANT_ROLES) \
                or (disabled is not None and not isinstance(disabled, bool)):
            raise ApiError(400, f'send {{"role": "{TENANT_ROLES[1]}"}} and/or {{"disabled": true}}'
                                f" (role: {' or '.join(TENANT_ROLES)})")
        if principal.subject == f"operator:{operator_id}" and (disabled or role not in (None, "tenant_admin")):
            raise ApiError(409, "you cannot disable or demote yourself; ask another admin of the tenant")
        async with self._pool.connection() as conn, conn.transaction():
            try:
                changed = await self._operators.change(conn, principal.tenant_id, operator_id,
                                                       role=None if role is None else str(role), disabled=disabled)
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            if role is not None:
                await self._audit.append(conn, self._entry(principal, "operator.role_changed", str(operator_id),
                                                           email=changed.email, role=changed.role))
            if disabled is not None:
                await self._audit.append(conn, self._entry(
                    principal, "operator.disabled" if disabled else "operator.enabled", str(operator_id),
                    email=changed.email))
        return json_response(_shown(changed))

    def routes(self) -> list[Route]:
        return [
            Route("/v1/admin/operators", self.operators, methods=["GET", "POST"]),
            Route("/v1/admin/operators/{operator_id}", self.operator, methods=["PATCH"]),
        ]
