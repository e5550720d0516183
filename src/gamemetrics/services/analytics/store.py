"""Tenant transactions and the per-process answer memo.

Every read runs in a transaction that first switches to the analytics role and names the
caller's tenant, so row-level security filters every table even if a query forgets to:

    SELECT set_config('role', 'gamemetrics_app', true),
           set_config('gamemetrics.tenant_id', '<tenant of the token>', true), ...

Answers are cached per tenant and game under the game's `events_stored` counter, which the
processor bumps in the same transaction that changes the rollups, and its `players_deleted`
counter, which a trigger bumps when an erasure deletes a player, and its `events_moved` counter,
which retention bumps when it archives or restores event rows: any makes a new key, so a cached
answer is never older than the data it was computed from.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, cast

from psycopg_pool import AsyncConnectionPool

from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.services.analytics import lookups
from gamemetrics.services.analytics.errors import NotFound
from gamemetrics.services.analytics.queries import Conn
from gamemetrics.services.analytics.types import LiveStats

T = TypeVar("T")
GameKey = tuple[uuid.UUID, uuid.UUID]


class AnalyticsStore:
    """Runs the metric queries of one tenant at a time under row-level security.

    `answers` keeps answers under keys that carry the data version, so entries never need
    invalidating; `live` keeps each game's live figures with the time their query started."""

    def __init__(self, pool: AsyncConnectionPool, *, role: str, answers: Memo[Hashable, Any],
                 live: Memo[GameKey, tuple[float, LiveStats]], statement_timeout_ms: int,
                 live_interval_s: float) -> None:
        self._pool = pool
        self._role = role
        self._timeout = str(statement_timeout_ms)
        self._answers = answers
        self._live = live
        self._live_ttl = live_interval_s / 2

    @property
    def pool(self) -> AsyncConnectionPool:
        """The service's pool, outside any tenant transaction (the token verifier reads the signing keys)."""
        return self._pool

    @asynccontextmanager
    async def tenant(self, tenant_id: uuid.UUID, *, pipeline: bool = True) -> AsyncIterator[Conn]:
        """A read-only transaction that sees `tenant_id`'s rows only.

        Pipelined, BEGIN, the settings and the first query leave in one round trip; a caller that
        reads through a server-side cursor (not allowed in pipeline mode) asks for no pipeline."""
        async with self._pool.connection() as conn, AsyncExitStack() as stack:
            if pipeline:
                await stack.enter_async_context(conn.pipeline())
            await stack.enter_async_context(conn.transaction())
            await conn.execute(
                "SELECT set_config('role', %s, true), set_config('gamemetrics.tenant_id', %s, true),"
                " set_config('TimeZone', 'UTC', true), set_config('statement_timeout', %s, true),"
                " set_config('transaction_read_only', 'on', true)",
                (self._role, str(tenant_id), self._timeout),
            )
            yield conn

    async def per_game(self, tenant_id: uuid.UUID, game_id: uuid.UUID, key: Hashable,
                       compute: Callable[[Conn], Awaitable[T]], *, pipeline: bool = True) -> T:
        """The answer for `key` on one game: cached while the game's stored events do not change."""
        async with self.tenant(tenant_id, pipeline=pipeline) as conn:
            cur = await conn.execute(
                "SELECT g.game_id, coalesce(c.events_stored, 0), coalesce(c.players_deleted, 0),"
                " coalesce(c.events_moved, 0) FROM games g"
                " LEFT JOIN game_counters c ON c.tenant_id = g.tenant_id AND c.game_id = g.game_id"
                " WHERE g.tenant_id = %s AND g.game_id = %s",
                (tenant_id, game_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"game {game_id} not found")
            full_key = (tenant_id, game_id, row[1], row[2], row[3], key)
            cached = self._answers.get(full_key)
            if cached is not MISS:
                return cast(T, cached)
            answer = await compute(conn)
        self._answers.put(full_key, answer)
        return answer

    async def per_tenant(self, tenant_id: uuid.UUID, key: Hashable, compute: Callable[[Conn], Awaitable[T]]) -> T:
        """The answer for `key` over all the tenant's games: cached while none of them changes."""
        async with self.tenant(tenant_id) as conn:
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(events_stored), 0), coalesce(sum(players_deleted), 0),"
                " coalesce(sum(events_moved), 0) FROM game_counters WHERE tenant_id = %s",
                (tenant_id,),
            )
            version = await cur.fetchone()
            full_key = (tenant_id, None, version, key)
            cached = self._answers.get(full_key)
            if cached is not MISS:
                return cast(T, cached)
            answer = await compute(conn)
        self._answers.put(full_key, answer)
        return answer

    async def uncached(self, tenant_id: uuid.UUID, compute: Callable[[Conn], Awaitable[T]]) -> T:
        async with self.tenant(tenant_id) as conn:
            return await compute(conn)

    async def live(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> LiveStats:
        """The game's live figures; subscribers of one game in this process share one query a tick."""
        key = (tenant_id, game_id)
        now = time.monotonic()
        seen = self._live.get(key)
        if seen is not MISS and now - seen[0] < self._live_ttl:
            return seen[1]
        async with self.tenant(tenant_id) as conn:
            await lookups.game(conn, tenant_id, game_id)
            stats = await lookups.live_stats(conn, tenant_id, game_id)
        self._live.put(key, (now, stats))
        return stats
