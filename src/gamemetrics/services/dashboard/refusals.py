"""Ingest's refusals of a tenant's game over a period, by reason and by day, read under row-level
security (the analytics role and the operator's tenant), as the dead letters are."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from psycopg_pool import AsyncConnectionPool

from gamemetrics.services.dashboard.periods import Period

# What each reason means to the person reading the page; an unknown reason shows as it is stored.
LABELS = {
    "invalid_schema": "invalid event (fields or types)",
    "unknown_event_type": "unknown event type",
    "event_too_large": "event too large",
    "timestamp_in_future": "timestamp in the future",
    "timestamp_too_old": "timestamp too old (send history to /v1/import)",
    "too_large": "request too large (bytes or events)",
    "malformed_request": "unreadable request (JSON, gzip, content type)",
    "rate_limited": "rate limited",
    "revoked_key": "revoked write key",
    "forbidden": "not allowed for this key (import, other game)",
    "unavailable": "platform unavailable (bus, rate limiter)",
}


@dataclass(frozen=True, slots=True)
class RefusalReason:
    """One reason's totals over the period and its refused requests per day."""

    reason: str
    events: int
    requests: int
    daily: list[tuple[str, float | None]]

    @property
    def label(self) -> str:
        return LABELS.get(self.reason, self.reason)


class RefusalStore:
    """A tenant's refusal counts, read under row-level security."""

    def __init__(self, pool: AsyncConnectionPool, *, role: str) -> None:
        self._pool = pool
        self._role = role

    async def daily(self, tenant_id: uuid.UUID, game_id: uuid.UUID, period: Period) -> list[tuple[str, str, int, int]]:
        """(day, reason, events, requests) of the game's refusals in the period, by day then reason."""
        start = datetime.combine(period.start, time(), UTC)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('role', %s, true), set_config('gamemetrics.tenant_id', %s, true)",
                               (self._role, str(tenant_id)))
            cur = await conn.execute(
                "SELECT (hour AT TIME ZONE 'UTC')::date AS day, reason, sum(events)::bigint, sum(requests)::bigint"
                " FROM ingest_refusals WHERE tenant_id = %s AND game_id = %s AND hour >= %s AND hour < %s"
                " GROUP BY day, reason ORDER BY day, reason",
                (tenant_id, game_id, start, start + timedelta(days=period.days)))
            return [(row[0].isoformat(), row[1], int(row[2]), int(row[3])) for row in await cur.fetchall()]


def by_reason(rows: list[tuple[str, str, int, int]], period: Period) -> list[RefusalReason]:
    """The reasons of `rows` with their totals and a point per day of the period, most requests first."""
    days = [d.isoformat() for d in period.dates()]
    totals: dict[str, list[int]] = {}
    per_day: dict[str, dict[str, int]] = {}
    for day, reason, events, requests in rows:
        total = totals.setdefault(reason, [0, 0])
        total[0] += events
        total[1] += requests
        per_day.setdefault(reason, {})[day] = requests
    reasons = [RefusalReason(reason, events, requests, [(d, float(per_day[reason].get(d, 0))) for d in days])
               for reason, (events, requests) in totals.items()]
    return sorted(reasons, key=lambda r: (-r.requests, r.reason))


def rows_csv(rows: list[tuple[str, str, int, int]]) -> str:
    """The refusals as CSV: a header, then one `date,reason,events,requests` line per day and reason."""
    lines = ["date,reason,events,requests"] + [f"{d},{r},{e},{n}" for d, r, e, n in rows]
    return "\r\n".join(lines) + "\r\n"
