"""OAuth2 clients: a client id and a secret (shown once, kept as a SHA-256), a tenant and scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.tenancy.store import NotFound

SCOPES = frozenset({
    "analytics:read", "players:read", "players:write", "gdpr:erase", "recommendations:read", "notifications:send",
    "admin",
})
CLIENT_ID_PREFIX = "gmc_"
SECRET_PREFIX = "gmcs_"
# Compared against when the client id is unknown, so an unknown id costs the same time as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such client").digest()


class InvalidScopes(ValueError):
    """Scopes that are not on the platform's list."""


def check_scopes(scopes: list[str] | set[str] | frozenset[str]) -> list[str]:
    """The scopes sorted and de-duplicated; InvalidScopes names any unknown one."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise InvalidScopes(f"unknown scopes {', '.join(unknown)}; choose from {', '.join(sorted(SCOPES))}")
    if not scopes:
        raise InvalidScopes(f"give at least one scope of {', '.join(sorted(SCOPES))}")
    return sorted(set(scopes))


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated client: what its tokens may carry."""

    client_id: str
    tenant_id: uuid.UUID
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client_id: str
    tenant_id: uuid.UUID
    client_secret: str
    scopes: list[str]
    name: str


class ClientStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create(self, conn: AsyncConnection, tenant_id: uuid.UUID, scopes: list[str], name: str) -> CreatedClient:
        """A new client of `tenant_id` (in the caller's transaction); the secret is in the answer only."""
        granted = check_scopes(scopes)
        cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))
        if await cur.fetchone() is None:
            raise NotFound(f"tenant {tenant_id} does not exist")
        client_id = CLIENT_ID_PREFIX + secrets.token_urlsafe(12)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO oauth_clients (client_id, tenant_id, name, secret_hash, scopes) VALUES (%s, %s, %s, %s, %s)",
            (client_id, tenant_id, name, secret_digest(secret), granted),
        )
        return CreatedClient(client_id, tenant_id, secret, granted, name)

    async def revoke(self, conn: AsyncConnection, client_id: str, *, tenant_id: uuid.UUID | None = None) -> uuid.UUID:
        """Revoke a live client (of `tenant_id` when given); the tenant it belonged to. Tokens it
        already holds stay valid until they expire (at most the token lifetime)."""
        cur = await conn.execute(
            "UPDATE oauth_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL"
            " AND (%s::uuid IS NULL OR tenant_id = %s::uuid) RETURNING tenant_id",
            (client_id, tenant_id, tenant_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"client {client_id} does not exist or is already revoked")
        tenant: uuid.UUID = row[0]
        return tenant

    async def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The client when the secret is its own and it is not revoked; None otherwise (same time either way)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tenant_id, scopes, secret_hash, revoked_at IS NULL FROM oauth_clients WHERE client_id = %s",
                (client_id,),
            )
            row = await cur.fetchone()
        stored = bytes(row[2]) if row else _DUMMY_HASH
        matches = hmac.compare_digest(stored, secret_digest(secret))
        if row is None or not matches or not row[3]:
            return None
        return Client(client_id, row[0], frozenset(row[1]))

    async def list(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT client_id, name, scopes, created_at, revoked_at FROM oauth_clients WHERE tenant_id = %s"
                " ORDER BY created_at, client_id", (tenant_id,),
            )
            names = ("client_id", "name", "scopes", "created_at", "revoked_at")
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
