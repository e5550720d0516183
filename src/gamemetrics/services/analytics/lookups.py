"""Games, players, live figures and the original schema's queries, inside a tenant transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gamemetrics.services.analytics.errors import NotFound
from gamemetrics.services.analytics.queries import Conn, _rows
from gamemetrics.services.analytics.types import (
    Event,
    Game,
    GameStats,
    LeaderboardEntry,
    LiveStats,
    Player,
    PlayerStats,
)


def _id(value: object) -> strawberry.ID:
    """A GraphQL ID from a database id (a UUID, or text)."""
    return strawberry.ID(str(value))


_GAMES = (
    "SELECT g.game_id, g.name, g.created_at, coalesce(c.events_stored, 0), coalesce(c.events_dead_lettered, 0)"
    " FROM games g LEFT JOIN game_counters c ON c.tenant_id = g.tenant_id AND c.game_id = g.game_id"
    " WHERE g.tenant_id = %s"
)


async def games(conn: Conn, tenant: uuid.UUID) -> list[Game]:
    rows = await _rows(conn, _GAMES + " ORDER BY g.created_at, g.game_id", (tenant,))
    return [Game(id=_id(g), name=n, created_at=c, events_stored=s, events_dead_lettered=d) for g, n, c, s, d in rows]


async def game(conn: Conn, tenant: uuid.UUID, game_id: uuid.UUID) -> Game:
    """The game, or NotFound (another tenant's game is not found either: row-level security)."""
    rows = await _rows(conn, _GAMES + " AND g.game_id = %s", (tenant, game_id))
    if not rows:
        raise NotFound(f"game {game_id} not found")
    g, n, c, s, d = rows[0]
    return Game(id=_id(g), name=n, created_at=c, events_stored=s, events_dead_lettered=d)


_PLAYER_COLUMNS = (
    "player_id, game_id, first_seen, last_seen, first_day, sessions, events, lifetime_revenue_usd, platform, os,"
    " country, app_version, best_score, traits"
)


async def player(conn: Conn, tenant: uuid.UUID, game_id: uuid.UUID, player_id: str) -> Player:
    rows = await _rows(
        conn, f"SELECT {_PLAYER_COLUMNS} FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s",
        (tenant, game_id, player_id),
    )
    if not rows:
        raise NotFound(f"player {player_id!r} not found in game {game_id}")
    p = rows[0]
    return Player(
        player_id=p[0], game_id=_id(p[1]), first_seen=p[2], last_seen=p[3], first_active_day=p[4], sessions=p[5],
        events=p[6], lifetime_revenue=p[7], platform=p[8], os=p[9], country=p[10], app_version=p[11],
        best_score=float(p[12]) if p[12] is not None else None, traits=p[13],
    )


async def live_stats(conn: Conn, tenant: uuid.UUID, game_id: uuid.UUID) -> LiveStats:
    """Events per second over the current and previous minute, players seen in the last five minutes,
    today's purchase revenue and the game's dead letters, all as of the transaction's start."""
    rows = await _rows(
        conn,
        "SELECT now(),"
        " (SELECT coalesce(sum(events), 0)::bigint FROM minute_stats WHERE tenant_id = %(t)s AND game_id = %(g)s"
        "   AND minute >= date_trunc('minute', now()) - interval '1 minute'),"
        " (SELECT count(*) FROM player_days WHERE tenant_id = %(t)s AND game_id = %(g)s"
        "   AND day >= (now() AT TIME ZONE 'UTC')::date - 1 AND last_event_at >= now() - interval '5 minutes'),"
        " (SELECT coalesce(sum(revenue_usd), 0) FROM game_days WHERE tenant_id = %(t)s AND game_id = %(g)s"
        "   AND day = (now() AT TIME ZONE 'UTC')::date),"
        " (SELECT events_dead_lettered FROM game_counters WHERE tenant_id = %(t)s AND game_id = %(g)s),"
        " (SELECT events_stored FROM game_counters WHERE tenant_id = %(t)s AND game_id = %(g)s)",
        {"t": tenant, "g": game_id},
    )
    at, recent, active, revenue, dead, stored = rows[0]
    elapsed = 60 + at.second + at.microsecond / 1e6
    return LiveStats(game_id=_id(game_id), at=at, events_per_second=recent / elapsed, active_players=active,
                     revenue_today=revenue, dead_letters=dead or 0, events_stored=stored or 0)


async def player_stats(conn: Conn, tenant: uuid.UUID, player_id: str, game_ids: Sequence[uuid.UUID] | None
                       ) -> PlayerStats:
    rows = await _rows(
        conn,
        "SELECT game_id, events, sessions, lifetime_revenue_usd, first_seen, last_seen FROM players"
        " WHERE tenant_id = %s AND game_id = ANY(coalesce(%s::uuid[], ARRAY(SELECT game_id FROM games"
        "  WHERE tenant_id = %s))) AND player_id = %s ORDER BY first_seen",
        (tenant, list(game_ids) if game_ids is not None else None, tenant, player_id),
    )
    if not rows:
        raise NotFound(f"player {player_id!r} not found")
    games_of_player = [r[0] for r in rows]
    breakdown = await _rows(
        conn,
        "SELECT event_type, count(*) FROM events WHERE tenant_id = %s AND game_id = ANY(%s) AND player_id = %s"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
        (tenant, games_of_player, player_id),
    )
    return PlayerStats(
        player_id=player_id, total_events=sum(r[1] for r in rows), event_breakdown=JSON(dict(breakdown)),
        first_seen=min(r[4] for r in rows), last_active=max(r[5] for r in rows),
        total_sessions=sum(r[2] for r in rows), total_revenue=sum((r[3] for r in rows), Decimal(0)),
        games=[_id(g) for g in games_of_player],
    )


async def game_stats(conn: Conn, tenant: uuid.UUID, game_id: uuid.UUID, today: Any) -> GameStats:
    found = await game(conn, tenant, game_id)
    rows = await _rows(
        conn,
        "SELECT (SELECT count(*) FROM players WHERE tenant_id = %(t)s AND game_id = %(g)s),"
        " (SELECT coalesce(sum(active_players), 0) FROM game_days WHERE tenant_id = %(t)s AND game_id = %(g)s"
        "   AND day = %(today)s),"
        " (SELECT count(*) FROM sessions WHERE tenant_id = %(t)s AND game_id = %(g)s),"
        " (SELECT avg(extract(epoch FROM ended_at - started_at)) FROM sessions"
        "   WHERE tenant_id = %(t)s AND game_id = %(g)s),"
        " (SELECT coalesce(sum(revenue_usd), 0) FROM game_days WHERE tenant_id = %(t)s AND game_id = %(g)s)",
        {"t": tenant, "g": game_id, "today": today},
    )
    players, active, session_count, average, revenue = rows[0]
    breakdown = await _rows(
        conn,
        "SELECT event_type, sum(events)::bigint FROM event_days WHERE tenant_id = %s AND game_id = %s"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
        (tenant, game_id),
    )
    return GameStats(
        game_id=found.id, name=found.name, total_players=players, total_events=found.events_stored,
        active_players=active, total_sessions=session_count,
        average_session_duration=float(average) if average is not None else None, total_revenue=revenue,
        event_breakdown=JSON(dict(breakdown)),
    )


async def leaderboard(conn: Conn, tenant: uuid.UUID, game_id: uuid.UUID, limit: int) -> list[LeaderboardEntry]:
    rows = await _rows(
        conn,
        "SELECT rank() OVER (ORDER BY best_score DESC), player_id, best_score FROM players"
        " WHERE tenant_id = %s AND game_id = %s AND best_score IS NOT NULL"
        " ORDER BY best_score DESC, player_id LIMIT %s",
        (tenant, game_id, limit),
    )
    return [LeaderboardEntry(rank=r, player_id=p, score=float(s)) for r, p, s in rows]


_EVENT_COLUMNS = (
    "event_id, event_type, event_name, player_id, game_id, session_id, event_time, received_at, properties,"
    " context, platform, country, revenue_usd"
)
# Newest first without an index on event time: look back one day, then a week, a month, a year.
_LOOKBACK = (timedelta(days=1), timedelta(days=7), timedelta(days=31), timedelta(days=366), None)


async def latest_events(conn: Conn, tenant: uuid.UUID, game_ids: Sequence[uuid.UUID] | None, player_id: str | None,
                        limit: int, now: datetime) -> list[Event]:
    rows: list[tuple[Any, ...]] = []
    for back in _LOOKBACK:
        rows = await _rows(
            conn,
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE tenant_id = %s"
            " AND (%s::uuid[] IS NULL OR game_id = ANY(%s)) AND (%s::text IS NULL OR player_id = %s)"
            " AND event_time >= %s ORDER BY event_time DESC, event_id LIMIT %s",
            (tenant, game_ids, game_ids, player_id, player_id,
             now - back if back is not None else datetime.min.replace(tzinfo=now.tzinfo), limit),
        )
        if len(rows) >= limit:
            break
    return [
        Event(event_id=_id(r[0]), event_type=r[1], name=r[2], player_id=r[3], game_id=_id(r[4]), session_id=r[5],
              timestamp=r[6], received_at=r[7], data=r[8], context=r[9], platform=r[10], country=r[11],
              revenue_usd=r[12])
        for r in rows
    ]
