"""The GraphQL result types. Field names are part of the contract: clients rely on them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from gamemetrics.services.analytics.metrics import Window

# Registered in place: `Window` itself is the GraphQL enum wherever an argument or field names it.
strawberry.enum(Window, name="Window", description="Days that count a player as active.")


@strawberry.type(description="One of the caller's games.")
class Game:
    id: strawberry.ID
    name: str
    created_at: datetime
    events_stored: int
    events_dead_lettered: int


@strawberry.type(description="A per-day count.")
class DayCount:
    date: date
    value: int


@strawberry.type(description="Day n of a cohort: the share (0..1) of the cohort active on cohort day + n.")
class RetentionDay:
    day: int
    value: float | None = strawberry.field(description="null until cohort day + n has begun, or for an empty cohort")
    players: int


@strawberry.type(description="Players whose first active day is cohortDate, and how many came back.")
class RetentionCohort:
    cohort_date: date
    size: int
    days: list[RetentionDay]


@strawberry.type(description="Purchase revenue of one day, in USD.")
class RevenueDay:
    date: date
    gross: Decimal
    payers: int
    arpdau: Decimal | None = strawberry.field(description="gross / DAU; null without active players")
    arppu: Decimal | None = strawberry.field(description="gross / payers; null without payers")
    conversion: float | None = strawberry.field(description="payers / DAU (0..1); null without active players")
    dau: int
    purchases: int
    ad_revenue: Decimal


@strawberry.type(description="Sessions that started on one day.")
class SessionDay:
    date: date
    sessions: int
    average_length_seconds: float | None
    median_length_seconds: float | None
    sessions_per_dau: float | None
    dau: int


@strawberry.input(description="A funnel step: an event type or a custom event's name, optionally with one "
                              "property equal to a value (compared as text), e.g. level_complete, level = 3.")
class FunnelStepInput:
    event: str
    property: str | None = None
    equals: str | None = None


@strawberry.type(description="Players who reached a funnel step within the window.")
class FunnelStep:
    step: int
    event: str
    property: str | None
    equals: str | None
    players: int
    conversion: float | None = strawberry.field(description="players / players of step 1 (0..1)")


@strawberry.type(description="How many events of a type (and custom name) were stored.")
class EventCount:
    event_type: str
    name: str | None
    count: int


@strawberry.type(description="Feedback on recommended items from one source (collaborative, similar, popular).")
class RecommendationFeedback:
    source: str
    shown: int
    clicked: int
    purchased: int
    click_through: float | None = strawberry.field(description="clicked / shown; null before anything was shown.")
    conversion: float | None = strawberry.field(description="purchased / shown; null before anything was shown.")


@strawberry.type(description="Events whose time falls in one UTC minute.")
class MinuteCount:
    minute: datetime
    value: int


@strawberry.type(description="A player of one game, as the processor keeps them.")
class Player:
    player_id: str
    game_id: strawberry.ID
    first_seen: datetime
    last_seen: datetime
    first_active_day: date | None
    sessions: int
    events: int
    lifetime_revenue: Decimal
    platform: str | None
    os: str | None
    country: str | None
    app_version: str | None
    best_score: float | None
    traits: JSON


@strawberry.type(description="Live figures of a game, pushed about every second.")
class LiveStats:
    game_id: strawberry.ID
    at: datetime
    events_per_second: float
    active_players: int = strawberry.field(description="players with an event in the last 5 minutes")
    revenue_today: Decimal
    dead_letters: int
    events_stored: int


# The original GameMetrics analytics schema, kept so its dashboard queries keep working.


@strawberry.type(description="A player across the caller's games (original schema).")
class PlayerStats:
    player_id: str
    total_events: int
    event_breakdown: JSON = strawberry.field(description="events per event type, e.g. {\"purchase\": 3}")
    first_seen: datetime
    last_active: datetime
    total_sessions: int
    total_revenue: Decimal
    games: list[strawberry.ID]


@strawberry.type(description="A game's totals (original schema).")
class GameStats:
    game_id: strawberry.ID
    name: str
    total_players: int
    total_events: int
    active_players: int = strawberry.field(description="players active today (UTC)")
    total_sessions: int
    average_session_duration: float | None = strawberry.field(description="seconds")
    total_revenue: Decimal
    event_breakdown: JSON


@strawberry.type(description="A player's best score (original schema).")
class LeaderboardEntry:
    rank: int
    player_id: str
    score: float


@strawberry.type(description="A stored event (original schema).")
class Event:
    event_id: strawberry.ID
    event_type: str
    name: str | None
    player_id: str
    game_id: strawberry.ID
    session_id: str | None
    timestamp: datetime
    received_at: datetime
    data: JSON = strawberry.field(description="the event's properties")
    context: JSON
    platform: str | None
    country: str | None
    revenue_usd: Decimal | None


@strawberry.type(description="Ingest's refusals of one game on one UTC day for one reason.")
class RefusalDay:
    date: date
    reason: str = strawberry.field(description="invalid_schema, unknown_event_type, event_too_large,"
                                               " timestamp_in_future, timestamp_too_old, too_large,"
                                               " malformed_request, rate_limited, revoked_key, forbidden, unavailable")
    events: int = strawberry.field(description="events the refused requests held, as far as ingest read them")
    requests: int


@strawberry.type(description="The dead letters of a game whose reasons are of one kind (the refused values,"
                             " such as timestamps and numbers, left out).")
class DeadLetterReason:
    reason: str
    letters: int
    replayed: int
    last_at: datetime


@strawberry.type(description="A dead letter: why the processor refused its event, and the event's original bytes.")
class DeadLetter:
    letter_id: int
    event_id: str | None
    reason: str
    created_at: datetime
    payload: str = strawberry.field(description="the raw envelope as received (UTF-8, bad bytes replaced)")
    replayed_at: datetime | None
    replayed_by: str | None
