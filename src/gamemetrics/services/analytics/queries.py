"""The SQL of each metric, over the rollups the processor keeps.

Every function runs inside a tenant transaction (row-level security on, see `store.py`) and still
names the tenant and game, so each query is an index range scan over the days asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.abc import QueryNoTemplate

from gamemetrics.services.analytics import metrics
from gamemetrics.services.analytics.metrics import FunnelCounter, FunnelStepSpec, Window
from gamemetrics.services.analytics.types import (
    DayCount,
    EventCount,
    FunnelStep,
    MinuteCount,
    RecommendationFeedback,
    RetentionCohort,
    RetentionDay,
    RevenueDay,
    SessionDay,
)

Conn = AsyncConnection[Any]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def _rows(conn: Conn, query: QueryNoTemplate, params: Any) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def daily_active(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date]) -> dict[date, int]:
    """Players with a row in player_days, per day (kept as a daily total by the processor)."""
    rows = await _rows(
        conn,
        "SELECT day, active_players FROM game_days WHERE tenant_id = %s AND game_id = %s AND day BETWEEN %s AND %s",
        (tenant, game, days[0], days[-1]),
    )
    return dict(rows)


async def active_users(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date],
                       window: Window) -> list[DayCount]:
    if window is Window.DAY:
        dau = await daily_active(conn, tenant, game, days)
        return [DayCount(date=d, value=v) for d, v in metrics.fill(days, dau, 0)]
    # Each player's active days as bits (bit i: day start + i) in bigint words of 63 bits, so no
    # word is negative. Grouped by hash: sorting player-days by player id, as a window function
    # needs, costs more than the rest of the query. metrics.rolling_active counts from the bits.
    start = days[0] - timedelta(days=window.value - 1)
    rows = await _rows(
        conn,
        "SELECT player_id, (day - %(start)s) / %(w)s, bit_or(1::bigint << ((day - %(start)s) %% %(w)s))"
        " FROM player_days WHERE tenant_id = %(t)s AND game_id = %(g)s AND day BETWEEN %(start)s AND %(hi)s"
        " GROUP BY 1, 2",
        {"t": tenant, "g": game, "start": start, "hi": days[-1], "w": metrics.WORD_BITS},
    )
    return [DayCount(date=d, value=v) for d, v in metrics.rolling_active(rows, start, days, window.value)]


async def new_players(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date]) -> dict[date, int]:
    rows = await _rows(
        conn,
        "SELECT first_day, count(*) FROM players WHERE tenant_id = %s AND game_id = %s"
        " AND first_day BETWEEN %s AND %s GROUP BY first_day",
        (tenant, game, days[0], days[-1]),
    )
    return dict(rows)


async def retention(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, cohorts: Sequence[date], offsets: Sequence[int],
                    today: date) -> list[RetentionCohort]:
    sizes = await new_players(conn, tenant, game, cohorts)
    # One primary-key probe of player_days per cohort member and day asked.
    rows = await _rows(
        conn,
        "SELECT p.first_day, n, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM player_days pd"
        "  WHERE pd.tenant_id = p.tenant_id AND pd.game_id = p.game_id AND pd.day = p.first_day + n"
        "  AND pd.player_id = p.player_id))"
        " FROM players p CROSS JOIN unnest(%(n)s::int[]) AS n"
        " WHERE p.tenant_id = %(t)s AND p.game_id = %(g)s AND p.first_day BETWEEN %(lo)s AND %(hi)s"
        " GROUP BY 1, 2",
        {"t": tenant, "g": game, "lo": cohorts[0], "hi": cohorts[-1], "n": list(offsets)},
    ) if offsets else []
    retained = {(c, n): k for c, n, k in rows}
    result = []
    for cohort in cohorts:
        size = sizes.get(cohort, 0)
        result.append(RetentionCohort(cohort_date=cohort, size=size, days=[
            RetentionDay(day=n, players=retained.get((cohort, n), 0),
                         value=metrics.retention_value(retained.get((cohort, n), 0), size, cohort, n, today))
            for n in offsets
        ]))
    return result


async def revenue(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date]) -> list[RevenueDay]:
    rows = await _rows(
        conn,
        "SELECT day, active_players, payers, revenue_usd, purchases FROM game_days"
        " WHERE tenant_id = %s AND game_id = %s AND day BETWEEN %s AND %s",
        (tenant, game, days[0], days[-1]),
    )
    ads = dict(await _rows(
        conn,
        "SELECT day, sum(revenue_usd) FROM event_days WHERE tenant_id = %s AND game_id = %s"
        " AND day BETWEEN %s AND %s AND event_type = 'ad_impression' GROUP BY day",
        (tenant, game, days[0], days[-1]),
    ))
    by_day = {r[0]: r[1:] for r in rows}
    result = []
    for day in days:
        dau, payers, gross, purchases = by_day.get(day, (0, 0, Decimal(0), 0))
        result.append(RevenueDay(
            date=day, gross=gross, payers=payers, arpdau=metrics.per_head(gross, dau),
            arppu=metrics.per_head(gross, payers), conversion=metrics.share(payers, dau), dau=dau,
            purchases=purchases, ad_revenue=ads.get(day, Decimal(0)),
        ))
    return result


async def sessions(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date]) -> list[SessionDay]:
    rows = await _rows(
        conn,
        "SELECT (started_at AT TIME ZONE 'UTC')::date, count(*), avg(len),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY len)"
        " FROM (SELECT started_at, extract(epoch FROM ended_at - started_at) AS len FROM sessions"
        "  WHERE tenant_id = %s AND game_id = %s AND started_at >= %s AND started_at < %s) AS s GROUP BY 1",
        (tenant, game, midnight(days[0]), midnight(days[-1] + timedelta(days=1))),
    )
    dau = await daily_active(conn, tenant, game, days)
    by_day = {r[0]: r[1:] for r in rows}
    result = []
    for day in days:
        count, average, median = by_day.get(day, (0, None, None))
        result.append(SessionDay(
            date=day, sessions=count, average_length_seconds=float(average) if average is not None else None,
            median_length_seconds=median, sessions_per_dau=metrics.share(count, dau.get(day, 0)),
            dau=dau.get(day, 0),
        ))
    return result


async def funnel(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date],
                 steps: Sequence[FunnelStepSpec], window: timedelta) -> list[FunnelStep]:
    matches = []
    params: list[Any] = []
    for step in steps:
        condition: sql.Composable = sql.SQL("(event_type = %s OR (event_type = 'custom' AND event_name = %s))")
        params += [step.event, step.event]
        if step.property is not None:
            condition = sql.SQL("({} AND properties->>%s = %s)").format(condition)
            params += [step.property, step.equals]
        matches.append(condition)
    query = sql.SQL(
        "SELECT player_id, event_time, ARRAY[{matches}] AS m FROM events"
        " WHERE tenant_id = %s AND game_id = %s AND event_time >= %s AND event_time < %s"
        " ORDER BY player_id, event_time"
    ).format(matches=sql.SQL(", ").join(matches))
    counter = FunnelCounter(len(steps), window)
    # Only rows matching some step matter; the filter is on the array, computed once per row.
    wrapped = sql.SQL("SELECT * FROM ({}) AS e WHERE true = ANY(m)").format(query)
    params += [tenant, game, midnight(days[0]), midnight(days[-1] + timedelta(days=1))]
    player: str | None = None
    batch: list[tuple[datetime, list[bool]]] = []
    async with conn.cursor(name="funnel") as cur:
        await cur.execute(wrapped, params)
        async for player_id, at, flags in cur:
            if player_id != player:
                if batch:
                    counter.player(batch)
                player, batch = player_id, []
            batch.append((at, flags))
    if batch:
        counter.player(batch)
    first = counter.reached[0] if steps else 0
    return [
        FunnelStep(step=i + 1, event=s.event, property=s.property, equals=s.equals, players=counter.reached[i],
                   conversion=metrics.share(counter.reached[i], first))
        for i, s in enumerate(steps)
    ]


async def top_events(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date],
                     limit: int) -> list[EventCount]:
    rows = await _rows(
        conn,
        "SELECT event_type, event_name, sum(events)::bigint AS n FROM event_days"
        " WHERE tenant_id = %s AND game_id = %s AND day BETWEEN %s AND %s"
        " GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT %s",
        (tenant, game, days[0], days[-1], limit),
    )
    return [EventCount(event_type=t, name=n or None, count=c) for t, n, c in rows]


async def events_per_minute(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date],
                            event_type: str | None, now: datetime) -> list[MinuteCount]:
    start = midnight(days[0])
    end = min(midnight(days[-1] + timedelta(days=1)), now.replace(second=0, microsecond=0) + timedelta(minutes=1))
    rows = await _rows(
        conn,
        "SELECT minute, sum(events)::bigint FROM minute_stats WHERE tenant_id = %s AND game_id = %s"
        " AND minute >= %s AND minute < %s AND (%s::text IS NULL OR event_type = %s) GROUP BY minute",
        (tenant, game, start, end, event_type, event_type),
    )
    counts = dict(rows)
    minutes = int((end - start).total_seconds() // 60) if end > start else 0
    return [MinuteCount(minute=m, value=counts.get(m, 0))
            for m in (start + timedelta(minutes=i) for i in range(minutes))]


async def recommendation_feedback(conn: Conn, tenant: uuid.UUID, game: uuid.UUID,
                                  days: Sequence[date]) -> list[RecommendationFeedback]:
    """Shown, clicked and purchased recommended items per source over the days, with the rates."""
    rows = await _rows(
        conn,
        "SELECT source, count(*) FILTER (WHERE kind = 'shown'), count(*) FILTER (WHERE kind = 'clicked'),"
        " count(*) FILTER (WHERE kind = 'purchased') FROM rec_feedback WHERE tenant_id = %s AND game_id = %s"
        " AND at >= %s AND at < %s GROUP BY source ORDER BY source",
        (tenant, game, midnight(days[0]), midnight(days[-1] + timedelta(days=1))),
    )
    return [RecommendationFeedback(source=source, shown=shown, clicked=clicked, purchased=purchased,
                                   click_through=clicked / shown if shown else None,
                                   conversion=purchased / shown if shown else None)
            for source, shown, clicked, purchased in rows]
