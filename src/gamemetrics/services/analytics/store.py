"""Tenant transactions and the per-process answer cache.

Every read runs in a transaction that first switches to the analytics role and names the
caller's tenant, so row-level security filters every table even if a query forgets to:

    SELECT set_config('role', 'gamemetrics_app', true),
           set_config('gamemetrics.tenant_id', '<tenant of the token>', true), ...

Answers are cached per tenant and game under the game's `events_stored` counter, which the
processor bumps in the same transaction that changes the rollups, and its `players_deleted`
counter, which a trigger bumps when an erasure deletes a player: either makes a new key, so a
cached answer is never older than the data it was computed from.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool

from gamemetrics.services.analytics import lookups
from gamemetrics.services.analytics.errors import NotFound
from gamemetrics.services.analytics.queries import Conn
from gamemetrics.services.analytics.types import LiveStats

T = TypeVar("T")
_MISSING = object()


class AnswerCache:
    """A bounded LRU of answers; keys carry the data version, so entries never need invalidating."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class AnalyticsStore:
    """Runs the metric queries of one tenant at a time under row-level security."""

    def __init__(self, pool: AsyncConnectionPool, *, role: str, cache_entries: int, statement_timeout_ms: int,
                 live_interval_s: float) -> None:
        self._pool = pool
        self._role = role
        self._timeout = str(statement_timeout_ms)
        self.cache = AnswerCache(cache_entries)
        self._live: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, LiveStats]] = {}
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
                "SELECT g.game_id, coalesce(c.events_stored, 0), coalesce(c.players_deleted, 0) FROM games g"
                " LEFT JOIN game_counters c ON c.tenant_id = g.tenant_id AND c.game_id = g.game_id"
                " WHERE g.tenant_id = %s AND g.game_id = %s",
                (tenant_id, game_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"game {game_id} not found")
            full_key = (tenant_id, game_id, row[1], row[2], key)
            cached = self.cache.get(full_key)
            if cached is not _MISSING:
                return cached  # type: ignore[no-any-return]
            answer = await compute(conn)
        self.cache.put(full_key, answer)
        return answer

    async def per_tenant(self, tenant_id: uuid.UUID, key: Hashable, compute: Callable[[Conn], Awaitable[T]]) -> T:
        """The answer for `key` over all the tenant's games: cached while none of them changes."""
        async with self.tenant(tenant_id) as conn:
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(events_stored), 0), coalesce(sum(players_deleted), 0)"
                " FROM game_counters WHERE tenant_id = %s",
                (tenant_id,),
            )
            version = await cur.fetchone()
            full_key = (tenant_id, None, version, key)
            cached = self.cache.get(full_key)
            if cached is not _MISSING:
                return cached  # type: ignore[no-any-return]
            answer = await compute(conn)
        self.cache.put(full_key, answer)
        return answer

    async def uncached(self, tenant_id: uuid.UUID, compute: Callable[[Conn], Awaitable[T]]) -> T:
        async with self.tenant(tenant_id) as conn:
            return await compute(conn)

    async def live(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> LiveStats:
        """The game's live figures; subscribers of one game in this process share one query a tick."""
        key = (tenant_id, game_id)
        now = time.monotonic()
        seen = self._live.get(key)
        if seen is not None and now - seen[0] < self._live_ttl:
            return seen[1]
        async with self.tenant(tenant_id) as conn:
            await lookups.game(conn, tenant_id, game_id)
            stats = await lookups.live_stats(conn, tenant_id, game_id)
        self._live[key] = (now, stats)
        if len(self._live) > 10_000:  # games nobody watches any more
            self._live = {k: v for k, v in self._live.items() if now - v[0] < 60}
        return stats
