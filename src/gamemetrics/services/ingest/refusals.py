"""Refusals counted per tenant, game, hour and reason in the process, flushed into `ingest_refusals`.

Counting is a dictionary update on the refusal's own path (an accepted batch counts nothing), so
it costs ingest nothing it would notice; a worker adds the counts to the table every few seconds
in one statement. A flush that fails puts its counts back for the next one, and the last flush
runs when the service stops. Refusals of a key that names no game (an unknown key, a missing
header) cannot be told apart by tenant and are left to the process's metrics.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger("ingest.refusals")

# A whole request refused, by its status; events refused one by one are counted under their kind.
BY_STATUS = {400: "malformed_request", 401: "revoked_key", 403: "forbidden", 413: "too_large",
             415: "malformed_request", 429: "rate_limited", 503: "unavailable"}
MAX_KEYS = 50_000  # between two flushes; a flood of distinct games past it is dropped and logged

Key = tuple[uuid.UUID, uuid.UUID, datetime, str]

UPSERT = """
INSERT INTO ingest_refusals (tenant_id, game_id, hour, reason, events, requests)
SELECT u.tenant_id, u.game_id, u.hour, u.reason, u.events, u.requests
FROM unnest(%s::uuid[], %s::uuid[], %s::timestamptz[], %s::text[], %s::bigint[], %s::bigint[])
     AS u (tenant_id, game_id, hour, reason, events, requests)
JOIN games g ON g.game_id = u.game_id AND g.tenant_id = u.tenant_id
ON CONFLICT (tenant_id, game_id, hour, reason) DO UPDATE
SET events = ingest_refusals.events + excluded.events, requests = ingest_refusals.requests + excluded.requests
"""


def _hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


class RefusalCounts:
    """Counts of refused events and requests since the last flush."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._counts: dict[Key, list[int]] = {}
        self.dropped = 0

    def add(self, tenant_id: uuid.UUID, game_id: uuid.UUID, reason: str, *, events: int, requests: int = 1) -> None:
        """Count `requests` refused with `reason` for the game, `events` events in them."""
        key = (tenant_id, game_id, _hour(self._clock()), reason)
        counts = self._counts.get(key)
        if counts is None:
            if len(self._counts) >= MAX_KEYS:
                self.dropped += requests
                return
            counts = self._counts[key] = [0, 0]
        counts[0] += events
        counts[1] += requests

    def take(self) -> dict[Key, list[int]]:
        """The counts so far; counting starts again from zero."""
        taken, self._counts = self._counts, {}
        return taken

    def put_back(self, taken: dict[Key, list[int]]) -> None:
        """Counts a flush could not store, merged into the ones counted since."""
        for (tenant_id, game_id, hour, reason), (events, requests) in taken.items():
            counts = self._counts.setdefault((tenant_id, game_id, hour, reason), [0, 0])
            counts[0] += events
            counts[1] += requests


class RefusalFlusher:
    """Adds the process's counts to `ingest_refusals` every `interval_s` seconds."""

    def __init__(self, counts: RefusalCounts, pool: AsyncConnectionPool, interval_s: float) -> None:
        self._counts = counts
        self._pool = pool
        self._interval_s = interval_s

    async def flush(self) -> int:
        """Store the counts so far; how many rows were added to."""
        taken = self._counts.take()
        if self._counts.dropped:
            log.warning("refusal counts dropped: too many games refused between two flushes",
                        requests=self._counts.dropped)
            self._counts.dropped = 0
        if not taken:
            return 0
        columns: tuple[list[object], ...] = ([], [], [], [], [], [])
        for key, (events, requests) in taken.items():
            for column, value in zip(columns, (*key, events, requests), strict=True):
                column.append(value)
        try:
            async with self._pool.connection() as conn:
                await conn.execute(UPSERT, columns)
        except Exception:
            self._counts.put_back(taken)
            raise
        return len(taken)

    async def run(self) -> None:
        """Flush until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    await self.flush()
                except Exception as exc:  # the counts wait for the next flush; ingest keeps serving
                    log.warning("refusal counts not stored; retrying at the next flush", error=str(exc))
        finally:
            try:
                await self.flush()
            except Exception as exc:
                log.warning("refusal counts lost at stop", error=str(exc))
