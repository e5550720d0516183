"""The users service's metrics: token requests by outcome, and the erasures not yet complete."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import Counter, Gauge
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger("users")

TOKEN_REQUESTS = Counter(
    "gamemetrics_token_requests_total",
    "Requests to the token endpoint, by outcome: issued, or the OAuth error code of the refusal",
    ["outcome"])
ERASURES_OPEN = Gauge("gamemetrics_erasures_open", "Erasure requests every store has not yet confirmed")
OLDEST_OPEN_ERASURE = Gauge(
    "gamemetrics_erasure_oldest_open_seconds", "Age of the oldest erasure request not yet complete (0 when none)")


class ErasureBacklog:
    """Reads how many erasures are open and how old the oldest is, every `interval_s`, for the
    alert that says an erasure is overdue (GDPR Art. 17: without undue delay)."""

    def __init__(self, pool: AsyncConnectionPool, interval_s: float) -> None:
        self._pool = pool
        self._interval_s = interval_s

    async def measure(self) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(requested_at)), 0)::float8"
                " FROM erasures WHERE completed_at IS NULL")
            row = await cur.fetchone()
        count, oldest = row if row is not None else (0, 0.0)
        ERASURES_OPEN.set(count)
        OLDEST_OPEN_ERASURE.set(oldest)

    async def run(self) -> None:
        """Measure until cancelled; a failed read leaves the last figures (the outage alerts on its own)."""
        while True:
            try:
                await self.measure()
            except Exception as exc:
                log.warning("erasure backlog not measured", error=str(exc))
            await asyncio.sleep(self._interval_s)
