"""Operators: people who log in to the dashboard, with an argon2id password hash and a role.

`POST /v1/operators/login` checks a password and answers an access token for the operator's
tenant with their role's scopes (a platform admin names the tenant to act on). Every login,
failed or not, is in the audit log; attempts are rate-limited per address and per email.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.auth.operators import ROLE_SCOPES
from gamemetrics.auth.signing import SigningKeyStore
from gamemetrics.auth.tokens import TokenIssuer
from gamemetrics.ports.cache import CacheError, RateLimiter
from gamemetrics.tenancy.store import NotFound
from gamemetrics.web.errors import ApiError, retry_after
from gamemetrics.web.requests import json_body
from gamemetrics.web.responses import json_response

ROLES = ROLE_SCOPES
TENANT_ROLES = ("tenant_admin", "analyst")  # what a tenant's own admins may give; platform admins are made by the CLI
MIN_PASSWORD = 12
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so an unknown email costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not the password of anyone")


@dataclass(frozen=True, slots=True)
class Operator:
    operator_id: uuid.UUID
    email: str
    role: str
    tenant_id: uuid.UUID | None


class OperatorStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create(self, conn: AsyncConnection, email: str, password: str, role: str,
                     tenant_id: uuid.UUID | None) -> Operator:
        """A new operator (in the caller's transaction); only the argon2 hash of the password is kept."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if (role == "platform_admin") != (tenant_id is None):
            raise ValueError("a platform admin has no tenant; every other role needs --tenant")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
        if tenant_id is not None:
            cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"tenant {tenant_id} does not exist")
        operator = Operator(uuid.uuid4(), email.strip().lower(), role, tenant_id)
        cur = await conn.execute(
            "INSERT INTO operators (operator_id, email, password_hash, role, tenant_id) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (email) DO NOTHING RETURNING 1",
            (operator.operator_id, operator.email, _hasher.hash(password), role, tenant_id),
        )
        if await cur.fetchone() is None:
            raise ValueError(f"an operator with the email {operator.email} exists already")
        return operator

    async def authenticate(self, email: str, password: str) -> Operator | None:
        """The operator when the password is theirs and they are not disabled."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT operator_id, email, role, tenant_id, password_hash, disabled_at IS NULL FROM operators"
                " WHERE email = %s", (email.strip().lower(),),
            )
            row = await cur.fetchone()
        try:
            _hasher.verify(row[4] if row else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row[5]:
            return None
        if _hasher.check_needs_rehash(row[4]):
            async with self._pool.connection() as conn:
                await conn.execute("UPDATE operators SET password_hash = %s WHERE operator_id = %s",
                                   (_hasher.hash(password), row[0]))
        return Operator(row[0], row[1], row[2], row[3])


@dataclass(frozen=True, slots=True)
class OperatorRow:
    """An operator of a tenant as the admin API lists them (never their hash)."""

    operator_id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


class TenantOperators:
    """The operators of one tenant: listed, changed and disabled in the caller's transaction."""

    COLUMNS = "operator_id, email, role, created_at, disabled_at"

    async def list(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> list[OperatorRow]:
        cur = await conn.execute(f"SELECT {self.COLUMNS} FROM operators WHERE tenant_id = %s ORDER BY email",
                                 (tenant_id,))
        return [OperatorRow(*row) for row in await cur.fetchall()]

    async def change(self, conn: AsyncConnection, tenant_id: uuid.UUID, operator_id: uuid.UUID, *,
                     role: str | None, disabled: bool | None) -> OperatorRow:
        """Set the role and/or the disabled state of an operator of the tenant; NotFound for anyone else."""
        if role is not None and role not in TENANT_ROLES:
            raise ValueError(f"a tenant's operator is one of {', '.join(TENANT_ROLES)}")
        cur = await conn.execute(
            "UPDATE operators SET role = coalesce(%s, role),"
            " disabled_at = CASE WHEN %s::boolean IS NULL THEN disabled_at WHEN %s THEN coalesce(disabled_at, now())"
            " ELSE NULL END"
            f" WHERE operator_id = %s AND tenant_id = %s RETURNING {self.COLUMNS}",
            (role, disabled, disabled, operator_id, tenant_id))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no operator {operator_id} in this tenant")
        return OperatorRow(*row)


class OperatorRoutes:
    def __init__(self, store: OperatorStore, pool: AsyncConnectionPool, audit: AuditLog, signing: SigningKeyStore,
                 issuer: TokenIssuer, limiter: RateLimiter, ttl_s: int) -> None:
        self._store = store
        self._pool = pool
        self._audit = audit
        self._signing = signing
        self._issuer = issuer
        self._limiter = limiter
        self._ttl_s = ttl_s

    async def login(self, request: Request) -> Response:
        body = await json_body(request, max_bytes=4096)
        email, password = (body.get("email"), body.get("password")) if isinstance(body, dict) else (None, None)
        if not isinstance(email, str) or not isinstance(password, str):
            raise ApiError(400, 'send {"email": "...", "password": "..."} (and "tenant_id" for a platform admin)')
        address = request.client.host if request.client else "unknown"
        for key in (f"address:{address}", f"email:{email.strip().lower()[:320]}"):
            try:
                wait = await self._limiter.take(key, 1)
            except CacheError as exc:
                raise ApiError(503, f"the rate limiter cannot be reached; retry later ({exc})",
                               headers={"Retry-After": "1"}) from exc
            if wait > 0:
                raise ApiError(429, f"too many login attempts; retry in {wait:.0f} s",
                               headers=retry_after(wait))
        operator = await self._store.authenticate(email, password)
        if operator is None:
            await self._audit.record(self._pool, AuditEntry(
                f"address:{address}", "operator.login_failed", subject=email.strip().lower()[:320]))
            raise ApiError(401, "wrong email or password")
        tenant_id = operator.tenant_id or _tenant_of_request(body)
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))
            if await cur.fetchone() is None:
                raise ApiError(400, f"tenant {tenant_id} does not exist")
        await self._audit.record(self._pool, AuditEntry(
            f"operator:{operator.operator_id}", "operator.login", tenant_id, operator.email,
            {"role": operator.role, "address": address}))
        await self._signing.current()
        scopes = ROLES[operator.role]
        token = self._issuer.issue(tenant_id, scopes, subject=f"operator:{operator.operator_id}", ttl_s=self._ttl_s)
        return json_response({"access_token": token, "token_type": "Bearer", "expires_in": self._ttl_s,
                              "scope": " ".join(scopes), "operator": _describe(operator)},
                             headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [Route("/v1/operators/login", self.login, methods=["POST"])]


def _tenant_of_request(body: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(body["tenant_id"]))
    except (KeyError, ValueError):
        raise ApiError(400, "a platform admin names the tenant to act on: tenant_id") from None


def _describe(operator: Operator) -> dict[str, Any]:
    return {"operator_id": operator.operator_id, "email": operator.email, "role": operator.role,
            "tenant_id": operator.tenant_id}
