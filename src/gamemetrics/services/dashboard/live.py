"""The live feed: one consumer of `player.events.processed` per dashboard process, kept in memory.

Per game it keeps events per received minute for the last `minutes` minutes and the latest events
for the tail; every browser of the process reads the same figures, so a hundred open dashboards
cost one consumer, not a hundred.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from gamemetrics.events.processed import ProcessedEvent, UnreadableProcessedEvent, read_processed
from gamemetrics.ports.bus import Record

log = structlog.get_logger("dashboard")
GameKey = tuple[uuid.UUID, uuid.UUID]


@dataclass(slots=True)
class _Game:
    minutes: dict[datetime, int] = field(default_factory=dict)
    seconds: dict[int, int] = field(default_factory=dict)
    tail: deque[ProcessedEvent] = field(default_factory=deque)
    seen: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict)


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What the live panel shows of one game at `at`."""

    at: datetime
    last_minute: int
    per_minute: list[tuple[datetime, int]]


class LiveFeed:
    """Counts and the tail of every game, fed batch by batch from the processed topic."""

    def __init__(self, *, minutes: int, tail: int) -> None:
        self._minutes = minutes
        self._tail = tail
        self._games: dict[GameKey, _Game] = {}

    @staticmethod
    def decode(records: list[Record]) -> list[ProcessedEvent]:
        """The batch's events; an unreadable record is logged and skipped (the feed only displays)."""
        events = []
        for record in records:
            try:
                events.append(read_processed(record))
            except UnreadableProcessedEvent as exc:
                log.warning("live feed skips a record", reason=str(exc))
        return events

    async def take(self, events: Sequence[ProcessedEvent]) -> None:
        """Count `events` (each event id once: a replayed batch is published again) and keep the newest."""
        now = datetime.now(UTC)
        horizon, now_s = _minute(now) - timedelta(minutes=self._minutes), int(now.timestamp())
        for event in events:
            game = self._games.setdefault((event.tenant_id, event.game_id), _Game())
            if event.event_id in game.seen:
                continue
            game.seen[event.event_id] = None
            if len(game.seen) > 10 * self._tail:
                game.seen.popitem(last=False)
            minute = _minute(event.received_at)
            if minute >= horizon:
                game.minutes[minute] = game.minutes.get(minute, 0) + 1
            second = int(event.received_at.timestamp())
            if second > now_s - 60:
                game.seconds[second] = game.seconds.get(second, 0) + 1
            game.tail.append(event)
            if len(game.tail) > self._tail:
                game.tail.popleft()
        for game in self._games.values():
            for old in [m for m in game.minutes if m < horizon]:
                del game.minutes[old]
            for gone in [s for s in game.seconds if s <= now_s - 60]:
                del game.seconds[gone]

    def figures(self, tenant_id: uuid.UUID, game_id: uuid.UUID, now: datetime | None = None) -> LiveFigures:
        """Events per minute over the kept minutes, and how many arrived in the last 60 seconds."""
        now = now or datetime.now(UTC)
        game = self._games.get((tenant_id, game_id), _Game())
        current = _minute(now)
        minutes = [current - timedelta(minutes=n) for n in range(self._minutes - 1, -1, -1)]
        per_minute = [(m, game.minutes.get(m, 0)) for m in minutes]
        now_s = int(now.timestamp())
        last_minute = sum(n for s, n in game.seconds.items() if now_s - 60 < s <= now_s)
        return LiveFigures(now, last_minute, per_minute)

    def throughput(self, now: datetime | None = None) -> tuple[int, int]:
        """Events of every game in the last 60 seconds, and how many games they came from."""
        now_s = int((now or datetime.now(UTC)).timestamp())
        counts = [sum(n for s, n in g.seconds.items() if now_s - 60 < s <= now_s) for g in self._games.values()]
        return sum(counts), sum(1 for n in counts if n)

    def tail(self, tenant_id: uuid.UUID, game_id: uuid.UUID, *, event_type: str | None = None,
             player_id: str | None = None, limit: int = 50) -> list[ProcessedEvent]:
        """The newest events of a game first, of one type and/or player when asked."""
        game = self._games.get((tenant_id, game_id))
        if game is None:
            return []
        chosen = [e for e in reversed(game.tail)
                  if (event_type is None or e.event_type == event_type)
                  and (player_id is None or e.player_id == player_id)]
        return chosen[:limit]


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)
