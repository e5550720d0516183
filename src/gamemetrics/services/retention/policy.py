"""Retention policies: how long each kind of data is kept, per tenant with per-game overrides."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

MAX_DAYS = 36_500


class PolicyError(ValueError):
    """A policy that cannot be kept (the message says which field and why)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Days each kind of data is kept; the audit log is kept for ever."""

    events_online_days: int = 90
    archive_days: int = 730
    dead_letter_days: int = 30
    notification_days: int = 180

    def checked(self) -> Policy:
        """This policy, or PolicyError naming what is wrong."""
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
                raise PolicyError(f"{field.name} must be a whole number of days from 1 to {MAX_DAYS}, not {value!r}")
        if self.archive_days < self.events_online_days:
            raise PolicyError(f"archive_days ({self.archive_days}) must be at least events_online_days"
                              f" ({self.events_online_days}): archives keep what is no longer online")
        return self

    def changed(self, changes: Mapping[str, Any]) -> Policy:
        """This policy with `changes` applied and checked; PolicyError for unknown fields or bad values."""
        known = {field.name for field in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise PolicyError(f"unknown policy fields {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **changes).checked()

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_COLUMNS = ("events_online_days", "archive_days", "dead_letter_days", "notification_days")


class PolicyStore:
    """Reads and writes `retention_policies`; a game without its own row follows its tenant's."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def effective(self, tenant_id: uuid.UUID, game_id: uuid.UUID | None = None) -> Policy:
        """The game's policy, else its tenant's, else the defaults."""
        async with self._pool.connection() as conn:
            return await self.effective_in(conn, tenant_id, game_id)

    @staticmethod
    async def effective_in(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID | None) -> Policy:
        cur = await conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM retention_policies WHERE tenant_id = %s"
            " AND (game_id IS NULL OR game_id = %s) ORDER BY game_id NULLS LAST LIMIT 1", (tenant_id, game_id))
        row = await cur.fetchone()
        return Policy(*row) if row else Policy()

    async def put(self, conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID | None,
                  changes: Mapping[str, Any]) -> Policy:
        """Apply `changes` to the effective policy and store it for the tenant (or its game)."""
        policy = (await self.effective_in(conn, tenant_id, game_id)).changed(changes)
        await conn.execute(
            f"INSERT INTO retention_policies (tenant_id, game_id, {', '.join(_COLUMNS)})"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, game_id) DO UPDATE SET"
            f" {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS)}, updated_at = now()",
            (tenant_id, game_id, *(getattr(policy, c) for c in _COLUMNS)))
        return policy

    async def listed(self, tenant_id: uuid.UUID | None = None) -> list[tuple[uuid.UUID, uuid.UUID | None, Policy]]:
        """Every stored policy (of one tenant, when given): tenant, game (None: tenant-wide), policy."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT tenant_id, game_id, {', '.join(_COLUMNS)} FROM retention_policies"
                " WHERE %s::uuid IS NULL OR tenant_id = %s ORDER BY tenant_id, game_id NULLS FIRST",
                (tenant_id, tenant_id))
            return [(row[0], row[1], Policy(*row[2:])) for row in await cur.fetchall()]
