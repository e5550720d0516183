"""Metric arithmetic, pure: date ranges, rolling active users, ratios, funnels, query cost.

docs/metrics.md defines every metric; the functions here are those definitions in code.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from gamemetrics.services.analytics.errors import BadUserInput

T = TypeVar("T")
MICRO_USD = Decimal("0.000001")
WORD_BITS = 63  # active days per bigint word of the activeUsers query: bit 63 is the sign


class Window(enum.Enum):
    """How many days, ending on the day itself, count a player as active."""

    DAY = 1
    WEEK = 7
    MONTH = 30


def days_between(start: date, end: date, *, max_days: int, what: str = "date range") -> list[date]:
    """Every UTC day from `start` to `end`, both included; BadUserInput if reversed or too long."""
    if end < start:
        raise BadUserInput(f"{what}: 'to' ({end}) is before 'from' ({start})")
    count = (end - start).days + 1
    if count > max_days:
        raise BadUserInput(f"{what} spans {count} days; at most {max_days} may be asked at once")
    return [start + timedelta(days=i) for i in range(count)]


def fill(days: Sequence[date], values: Mapping[date, T], default: T) -> list[tuple[date, T]]:
    """One value per day, `default` where nothing was stored."""
    return [(day, values.get(day, default)) for day in days]


def rolling_active(words: Iterable[tuple[str, int, int]], start: date, days: Sequence[date],
                   window: int) -> list[tuple[date, int]]:
    """Players active in each day's window, from each player's active days as bits.

    `words` are (player, k, bits): bit i of bits is day start + WORD_BITS·k + i. A player active
    on day a counts on the days a .. a+window-1: widening the bits by the window gives the days
    the player counts on, and the count changes by +1 where a run of such days begins and -1 after
    it ends.
    """
    masks: dict[str, int] = {}
    for player, k, bits in words:
        masks[player] = masks.get(player, 0) | bits << (WORD_BITS * k)
    changes: Counter[int] = Counter()
    for mask in masks.values():
        covered, width = mask, 1
        while width * 2 <= window:  # doubling: each bit covers `width` days
            covered |= covered << width
            width *= 2
        covered |= covered << (window - width)
        for edges, step in ((covered & ~(covered << 1), 1), ((covered << 1) & ~covered, -1)):
            while edges:
                low = edges & -edges
                changes[low.bit_length() - 1] += step
                edges ^= low
    result: list[tuple[date, int]] = []
    running, offset = 0, 0
    for day in days:
        while offset <= (day - start).days:
            running += changes[offset]
            offset += 1
        result.append((day, running))
    return result


def share(part: int, whole: int) -> float | None:
    """part / whole as a 0..1 float; None when there is nothing to divide by."""
    return part / whole if whole else None


def per_head(amount: Decimal, heads: int) -> Decimal | None:
    """USD per player, to the micro-dollar (half up); None without players."""
    if not heads:
        return None
    return (amount / heads).quantize(MICRO_USD, rounding=ROUND_HALF_UP)


def retention_value(retained: int, size: int, cohort: date, day: int, today: date) -> float | None:
    """Share of a cohort active on cohort day + `day`; None before that day or for an empty cohort."""
    if size == 0 or cohort + timedelta(days=day) > today:
        return None
    return retained / size


@dataclass(frozen=True, slots=True)
class FunnelStepSpec:
    """An event type, or a custom event's name, optionally with one property equal to a value."""

    event: str
    property: str | None = None
    equals: str | None = None


@dataclass(slots=True)
class FunnelCounter:
    """Counts players reaching each step, fed one player's matching events at a time in time order.

    Step 1 is the player's first step-1 event in the range; each later step is the earliest event
    matching it strictly after the previous step, and no later than step 1 + the window.
    """

    steps: int
    window: timedelta
    reached: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reached = [0] * self.steps

    def player(self, events: Iterable[tuple[datetime, Sequence[bool]]]) -> int:
        """Feed one player's events (time, which steps the event matches); returns steps reached."""
        remaining = iter(events)
        for at, matches in remaining:  # the funnel starts at the player's first event matching step one
            if matches[0]:
                deadline, previous = at + self.window, at
                break
        else:
            return 0
        stage = 1
        for at, matches in remaining:
            if stage == self.steps or at > deadline:
                break
            if matches[stage] and at > previous:
                previous = at
                stage += 1
        for step in range(stage):
            self.reached[step] += 1
        return stage


# Query cost: what a field reads, in days of rollups (raw events weigh more).
_PER_DAY_FIELDS = {"newPlayers", "revenue", "sessions", "topEvents", "recommendationFeedback", "ingestRefusals"}
_FLAT_COST = {"games": 1, "player": 5, "playerStats": 20, "gameStats": 20, "leaderboard": 5, "events": 20,
              "liveStats": 5, "__typename": 0, "__schema": 0, "__type": 0}


def field_cost(name: str, args: Mapping[str, object]) -> int:
    """The cost of one root field with its arguments (unreadable arguments count as one day:
    the resolver refuses them anyway)."""
    if name in _FLAT_COST:
        return _FLAT_COST[name]
    if name in _PER_DAY_FIELDS:
        return _span(args.get("from"), args.get("to"))
    if name == "activeUsers":
        window = args.get("window", "DAY")
        extra = Window[window].value - 1 if isinstance(window, str) and window in Window.__members__ else 0
        return _span(args.get("from"), args.get("to")) + extra
    if name == "retention":
        days = args.get("days")
        return _span(args.get("cohortFrom"), args.get("cohortTo")) * max(1, len(days) if isinstance(days, list) else 3)
    if name == "funnel":
        steps = args.get("steps")
        return _span(args.get("from"), args.get("to")) * 10 * max(1, len(steps) if isinstance(steps, list) else 1)
    if name == "eventsPerMinute":
        return _span(args.get("from"), args.get("to")) * 24
    return 10


def _span(start: object, end: object) -> int:
    try:
        first, last = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError:
        return 1
    return max(1, (last - first).days + 1)
