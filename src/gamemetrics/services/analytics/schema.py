"""The GraphQL schema: queries per game and UTC date range, the original schema, liveStats."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar

import strawberry
import structlog
from strawberry.types import Info

from gamemetrics.auth.tokens import Principal
from gamemetrics.services.analytics import lookups, quality, queries
from gamemetrics.services.analytics.errors import AnalyticsError, BadUserInput, Forbidden, Unauthenticated
from gamemetrics.services.analytics.metrics import FunnelStepSpec, Window, days_between
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.services.analytics.types import (
    DayCount,
    DeadLetter,
    DeadLetterReason,
    Event,
    EventCount,
    FunnelStep,
    FunnelStepInput,
    Game,
    GameStats,
    LeaderboardEntry,
    LiveStats,
    MinuteCount,
    Player,
    PlayerStats,
    RecommendationFeedback,
    RefusalDay,
    RetentionCohort,
    RevenueDay,
    SessionDay,
)

log = structlog.get_logger("analytics")
T = TypeVar("T")
SCOPE = "analytics:read"
RETENTION_DAYS = [1, 7, 30]
From = Annotated[date, strawberry.argument(name="from", description="first UTC day")]


@dataclass(frozen=True, slots=True)
class Limits:
    """Query guards from the settings."""

    max_range_days: int = 400
    max_minute_days: int = 7
    live_interval_s: float = 1.0


@dataclass(slots=True)
class AnalyticsContext:
    """Per HTTP request, or per WebSocket connection (the principal is set on connection_init)."""

    store: AnalyticsStore
    limits: Limits
    principal: Principal | None = None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = field(default=None)


Ctx = Info[AnalyticsContext, None]


def _tenant(info: Ctx) -> uuid.UUID:
    principal = info.context.principal
    if principal is None:
        raise Unauthenticated("a bearer token with the analytics:read scope is required")
    if principal.expired:
        raise Unauthenticated("the token has expired")
    if SCOPE not in principal.scopes:
        raise Forbidden(f"this token lacks the scope {SCOPE!r}")
    return principal.tenant_id


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput(f"{what} {value!r} is not a UUID") from None


def _days(info: Ctx, start: date, end: date) -> list[date]:
    return days_between(start, end, max_days=info.context.limits.max_range_days)


def _today() -> date:
    return datetime.now(UTC).date()


def _limit(value: int, most: int) -> int:
    if not 1 <= value <= most:
        raise BadUserInput(f"limit must be between 1 and {most}, not {value}")
    return value


def _of_game(tenant: uuid.UUID, game: uuid.UUID,
             compute: Callable[[queries.Conn], Awaitable[T]]) -> Callable[[queries.Conn], Awaitable[T]]:
    """`compute` after checking that the game is the tenant's (NOT_FOUND otherwise, as every field of a game)."""
    async def checked(conn: queries.Conn) -> T:
        await lookups.game(conn, tenant, game)
        return await compute(conn)
    return checked


@strawberry.type
class Query:
    @strawberry.field(description="The caller's games.")
    async def games(self, info: Ctx) -> list[Game] | None:
        tenant = _tenant(info)
        return await info.context.store.uncached(tenant, lambda conn: lookups.games(conn, tenant))

    @strawberry.field(description="Players active in each day's window (DAU, WAU = 7 days, MAU = 30 days).")
    async def active_users(self, info: Ctx, game_id: strawberry.ID, from_: From,
                           to: date, window: Window = Window.DAY) -> list[DayCount] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        return await info.context.store.per_game(
            tenant, game, ("activeUsers", from_, to, window),
            lambda conn: queries.active_users(conn, tenant, game, days, window))

    @strawberry.field(description="Players whose first active day is the day.")
    async def new_players(self, info: Ctx, game_id: strawberry.ID,
                          from_: From, to: date
                          ) -> list[DayCount] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)

        async def compute(conn: queries.Conn) -> list[DayCount]:
            counts = await queries.new_players(conn, tenant, game, days)
            return [DayCount(date=d, value=counts.get(d, 0)) for d in days]

        return await info.context.store.per_game(tenant, game, ("newPlayers", from_, to), compute)

    @strawberry.field(description="Day-n retention of each cohort day: the share of its new players active "
                                  "on cohort day + n.")
    async def retention(self, info: Ctx, game_id: strawberry.ID, cohort_from: date, cohort_to: date,
                        days: list[int] = RETENTION_DAYS) -> list[RetentionCohort] | None:  # noqa: B006 (never mutated)
        tenant, game = _tenant(info), _uuid(game_id, "gameId")
        cohorts = days_between(cohort_from, cohort_to, max_days=info.context.limits.max_range_days,
                               what="cohort range")
        offsets = list(dict.fromkeys(days))
        limit = info.context.limits.max_range_days
        if len(offsets) > 31 or any(not 0 <= n <= limit for n in offsets):
            raise BadUserInput(f"days: at most 31 values, each from 0 to {limit}")
        today = _today()
        return await info.context.store.per_game(
            tenant, game, ("retention", cohort_from, cohort_to, tuple(offsets), today),
            lambda conn: queries.retention(conn, tenant, game, cohorts, offsets, today))

    @strawberry.field(description="Purchase revenue per day with payers, ARPDAU, ARPPU and conversion.")
    async def revenue(self, info: Ctx, game_id: strawberry.ID, from_: From,
                      to: date) -> list[RevenueDay] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        return await info.context.store.per_game(
            tenant, game, ("revenue", from_, to), lambda conn: queries.revenue(conn, tenant, game, days))

    @strawberry.field(description="Sessions that started each day: count, average and median length, per DAU.")
    async def sessions(self, info: Ctx, game_id: strawberry.ID, from_: From,
                       to: date) -> list[SessionDay] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        return await info.context.store.per_game(
            tenant, game, ("sessions", from_, to), lambda conn: queries.sessions(conn, tenant, game, days))

    @strawberry.field(description="Players reaching each ordered step within windowHours of their first step.")
    async def funnel(self, info: Ctx, game_id: strawberry.ID, steps: list[FunnelStepInput],
                     from_: From, to: date,
                     window_hours: int = 24) -> list[FunnelStep] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        if not 1 <= len(steps) <= 20:
            raise BadUserInput("a funnel has from 1 to 20 steps")
        if not 1 <= window_hours <= 24 * 90:
            raise BadUserInput(f"windowHours must be between 1 and {24 * 90}")
        specs = tuple(FunnelStepSpec(s.event, s.property, s.equals) for s in steps)
        if any((s.property is None) != (s.equals is None) for s in specs):
            raise BadUserInput("a funnel step names both property and equals, or neither")
        window = timedelta(hours=window_hours)
        return await info.context.store.per_game(
            tenant, game, ("funnel", from_, to, specs, window_hours),
            lambda conn: queries.funnel(conn, tenant, game, days, specs, window), pipeline=False)

    @strawberry.field(description="The most frequent event types and custom names in the range.")
    async def top_events(self, info: Ctx, game_id: strawberry.ID, from_: From,
                         to: date, limit: int = 10) -> list[EventCount] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        limit = _limit(limit, 100)
        return await info.context.store.per_game(
            tenant, game, ("topEvents", from_, to, limit),
            lambda conn: queries.top_events(conn, tenant, game, days, limit))

    @strawberry.field(description="Events per UTC minute (of one type, or all), up to the current minute.")
    async def events_per_minute(self, info: Ctx, game_id: strawberry.ID,
                                from_: From, to: date,
                                event_type: str | None = None) -> list[MinuteCount] | None:
        tenant, game = _tenant(info), _uuid(game_id, "gameId")
        days = days_between(from_, to, max_days=info.context.limits.max_minute_days, what="per-minute range")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return await info.context.store.per_game(
            tenant, game, ("eventsPerMinute", from_, to, event_type, now),
            lambda conn: queries.events_per_minute(conn, tenant, game, days, event_type, now))

    @strawberry.field(description="Click-through and conversion of the recommender's answers, per source.")
    async def recommendation_feedback(self, info: Ctx, game_id: strawberry.ID, from_: From,
                                      to: date) -> list[RecommendationFeedback] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        # Uncached: feedback does not move the data version that keys the answer cache.
        return await info.context.store.uncached(
            tenant, lambda conn: queries.recommendation_feedback(conn, tenant, game, days))

    @strawberry.field(description="Ingest's refusals of the game per UTC day and reason (days without any left out).")
    async def ingest_refusals(self, info: Ctx, game_id: strawberry.ID, from_: From,
                              to: date) -> list[RefusalDay] | None:
        tenant, game, days = _tenant(info), _uuid(game_id, "gameId"), _days(info, from_, to)
        # Uncached: refusals and dead letters do not move the data version that keys the answer cache.
        return await info.context.store.uncached(
            tenant, _of_game(tenant, game, lambda conn: quality.refusals(conn, tenant, game, days)))

    @strawberry.field(description="The game's dead letters grouped by the kind of their reason, most first.")
    async def dead_letter_reasons(self, info: Ctx, game_id: strawberry.ID) -> list[DeadLetterReason] | None:
        tenant, game = _tenant(info), _uuid(game_id, "gameId")
        return await info.context.store.uncached(
            tenant, _of_game(tenant, game, lambda conn: quality.dead_letter_reasons(conn, tenant, game)))

    @strawberry.field(description="The newest dead letters of one kind of reason (as deadLetterReasons names it),"
                                  " with their original payload.")
    async def dead_letters(self, info: Ctx, game_id: strawberry.ID, reason: str,
                           limit: int = 100) -> list[DeadLetter] | None:
        tenant, game, limit = _tenant(info), _uuid(game_id, "gameId"), _limit(limit, 500)
        return await info.context.store.uncached(
            tenant, _of_game(tenant, game, lambda conn: quality.dead_letters(conn, tenant, game, reason, limit)))

    @strawberry.field(description="One player of a game.")
    async def player(self, info: Ctx, game_id: strawberry.ID, player_id: str) -> Player | None:
        tenant, game = _tenant(info), _uuid(game_id, "gameId")
        return await info.context.store.per_game(
            tenant, game, ("player", player_id), lambda conn: lookups.player(conn, tenant, game, player_id))

    # The original GameMetrics analytics schema.

    @strawberry.field(description="A player's totals over the caller's games, or one game (original schema).")
    async def player_stats(self, info: Ctx, player_id: str, game_id: strawberry.ID | None = None) -> PlayerStats | None:
        tenant = _tenant(info)
        games = [_uuid(game_id, "gameId")] if game_id is not None else None
        return await info.context.store.per_tenant(
            tenant, ("playerStats", player_id, game_id),
            lambda conn: lookups.player_stats(conn, tenant, player_id, games))

    @strawberry.field(description="A game's totals (original schema).")
    async def game_stats(self, info: Ctx, game_id: strawberry.ID) -> GameStats | None:
        tenant, game, today = _tenant(info), _uuid(game_id, "gameId"), _today()
        return await info.context.store.per_game(
            tenant, game, ("gameStats", today), lambda conn: lookups.game_stats(conn, tenant, game, today))

    @strawberry.field(description="Players ranked by their best level_complete or game_end score (original schema).")
    async def leaderboard(self, info: Ctx, game_id: strawberry.ID, limit: int = 10) -> list[LeaderboardEntry] | None:
        tenant, game, limit = _tenant(info), _uuid(game_id, "gameId"), _limit(limit, 1000)
        return await info.context.store.per_game(
            tenant, game, ("leaderboard", limit), lambda conn: lookups.leaderboard(conn, tenant, game, limit))

    @strawberry.field(description="The latest stored events, newest first (original schema).")
    async def events(self, info: Ctx, player_id: str | None = None, game_id: strawberry.ID | None = None,
                     limit: int = 50) -> list[Event] | None:
        tenant, limit = _tenant(info), _limit(limit, 1000)
        games = [_uuid(game_id, "gameId")] if game_id is not None else None
        now = datetime.now(UTC)
        return await info.context.store.per_tenant(
            tenant, ("events", player_id, game_id, limit),
            lambda conn: lookups.latest_events(conn, tenant, games, player_id, limit, now))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="A game's live figures, about every second.")
    async def live_stats(self, info: Ctx, game_id: strawberry.ID) -> AsyncGenerator[LiveStats, None]:
        tenant, game = _tenant(info), _uuid(game_id, "gameId")
        while True:
            _tenant(info)  # a token that expires ends the subscription
            try:
                stats = await info.context.store.live(tenant, game)
            except AnalyticsError:
                raise
            except Exception as exc:  # errors of a stream have no path: say it here, keep details out
                log.error("liveStats failed", tenant=str(tenant), game=str(game), exc_info=exc)
                raise AnalyticsError("internal error; it has been logged") from None
            yield stats
            await asyncio.sleep(info.context.limits.live_interval_s)
