"""Tenancy rows in PostgreSQL: create tenants, games and keys; resolve a key to what it grants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.tenancy.keys import WriteKey, key_digest, new_key_secret


class NotFound(LookupError):
    """A tenant, game or key that does not exist."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key_id: uuid.UUID
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    write_key: str


class TenancyStore:
    """Each change runs on the connection given (inside the caller's transaction, beside its audit
    entry), or on one of the pool's."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _connection(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
        else:
            async with self._pool.connection() as own:
                yield own

    async def create_tenant(self, name: str) -> uuid.UUID:
        tenant_id = uuid.uuid4()
        async with self._pool.connection() as conn:
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant_id, name))
        return tenant_id

    async def create_game(self, tenant_id: uuid.UUID, name: str, *, conn: AsyncConnection | None = None) -> uuid.UUID:
        game_id = uuid.uuid4()
        async with self._connection(conn) as conn:
            cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"tenant {tenant_id} does not exist")
            await conn.execute(
                "INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, %s)", (game_id, tenant_id, name)
            )
        return game_id

    async def create_write_key(
        self, game_id: uuid.UUID, *, environment: str = "production", allow_import: bool = False,
        conn: AsyncConnection | None = None,
    ) -> CreatedKey:
        secret = new_key_secret(environment)
        key_id = uuid.uuid4()
        async with self._connection(conn) as conn:
            cur = await conn.execute("SELECT tenant_id FROM games WHERE game_id = %s", (game_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"game {game_id} does not exist")
            await conn.execute(
                "INSERT INTO write_keys (key_id, tenant_id, game_id, key_hash, key_prefix, environment, allow_import)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (key_id, row[0], game_id, key_digest(secret), secret[:12], environment, allow_import),
            )
        return CreatedKey(key_id, row[0], game_id, secret)

    async def revoke_write_key(self, key_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None,
                               conn: AsyncConnection | None = None) -> uuid.UUID:
        """Revoke a live key (of `tenant_id` when given); the tenant it belonged to."""
        async with self._connection(conn) as conn:
            cur = await conn.execute(
                "UPDATE write_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL"
                " AND (%s::uuid IS NULL OR tenant_id = %s::uuid) RETURNING tenant_id",
                (key_id, tenant_id, tenant_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"write key {key_id} does not exist or is already revoked")
            tenant: uuid.UUID = row[0]
            return tenant

    async def games(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        """The tenant's games, oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT game_id, name, created_at FROM games WHERE tenant_id = %s ORDER BY created_at, game_id",
                (tenant_id,),
            )
            return [{"game_id": g, "name": n, "created_at": c} for g, n, c in await cur.fetchall()]

    async def game_of_tenant(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM games WHERE tenant_id = %s AND game_id = %s", (tenant_id, game_id))
            return await cur.fetchone() is not None

    async def write_keys(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> list[dict[str, Any]]:
        """A game's keys: ids, prefixes and dates, never the keys."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_id, key_prefix, environment, allow_import, created_at, revoked_at FROM write_keys"
                " WHERE tenant_id = %s AND game_id = %s ORDER BY created_at, key_id", (tenant_id, game_id),
            )
            names = ("key_id", "key_prefix", "environment", "allow_import", "created_at", "revoked_at")
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def resolve(self, secret: str) -> WriteKey | None:
        """The grant of a live key; None for unknown or revoked keys."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_id, tenant_id, game_id, allow_import FROM write_keys"
                " WHERE key_hash = %s AND revoked_at IS NULL",
                (key_digest(secret),),
            )
            row = await cur.fetchone()
        return WriteKey(*row) if row else None

    async def grant(self, secret: str) -> tuple[WriteKey, bool] | None:
        """What a key grants and whether it is live (not revoked); None for a key never issued."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_id, tenant_id, game_id, allow_import, revoked_at IS NULL FROM write_keys"
                " WHERE key_hash = %s",
                (key_digest(secret),),
            )
            row = await cur.fetchone()
        return (WriteKey(*row[:4]), bool(row[4])) if row else None
