"""Tenancy rows in PostgreSQL: create tenants, games and keys; resolve a key to what it grants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create_tenant(self, name: str) -> uuid.UUID:
        tenant_id = uuid.uuid4()
        async with self._pool.connection() as conn:
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant_id, name))
        return tenant_id

    async def create_game(self, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
        game_id = uuid.uuid4()
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"tenant {tenant_id} does not exist")
            await conn.execute(
                "INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, %s)", (game_id, tenant_id, name)
            )
        return game_id

    async def create_write_key(
        self, game_id: uuid.UUID, *, environment: str = "production", allow_import: bool = False
    ) -> CreatedKey:
        secret = new_key_secret(environment)
        key_id = uuid.uuid4()
        async with self._pool.connection() as conn:
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

    async def revoke_write_key(self, key_id: uuid.UUID) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE write_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
            )
            if cur.rowcount == 0:
                raise NotFound(f"write key {key_id} does not exist or is already revoked")

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
