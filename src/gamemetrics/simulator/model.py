"""Seeded player journeys as native event dicts (pure: no I/O, no clock).

A `Simulation` is a game launched on `start`: players arrive over the first days, play a few
sessions on the days they show up (levels won and lost, items, achievements, ads, purchases in
their local currency, a few custom events) and churn, most of them early, so retention decays the
way it does in real games. A loyal core never leaves, so an endless stream never runs dry.

Everything is drawn from random generators seeded by (seed, start, player, day), so the same
arguments always give the same events, ids included, and re-sending them stores nothing twice.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gamemetrics.settings import DEFAULT_FX_RATES_USD
from gamemetrics.simulator.tastes import Taste, taste_of

Event = dict[str, Any]

# (country, locale, currency, weight)
_COUNTRIES = (
    ("US", "en-US", "USD", 28), ("DE", "de-DE", "EUR", 8), ("FR", "fr-FR", "EUR", 6), ("GB", "en-GB", "GBP", 7),
    ("JP", "ja-JP", "JPY", 8), ("KR", "ko-KR", "KRW", 5), ("BR", "pt-BR", "BRL", 8), ("CA", "en-CA", "CAD", 4),
    ("AU", "en-AU", "AUD", 3), ("IN", "hi-IN", "INR", 8), ("MX", "es-MX", "MXN", 5), ("SE", "sv-SE", "SEK", 2),
    ("PL", "pl-PL", "PLN", 3), ("TR", "tr-TR", "TRY", 3),
)
# (platform, os, device, weight)
_DEVICES = (
    ("iOS", "iOS 17.4", "iPhone 15", 18), ("iOS", "iOS 16.7", "iPhone 12", 10),
    ("iPadOS", "iPadOS 17.3", "iPad Air", 4),
    ("Android", "Android 14", "Pixel 8", 10), ("Android", "Android 13", "Galaxy S23", 16),
    ("Android", "Android 12", "Redmi Note 11", 12), ("Steam", "Windows 11", "Desktop", 14),
    ("Steam", "macOS 14.3", "MacBook Air", 4), ("Switch", "Switch 17.0", "Nintendo Switch", 6),
    ("WebGL", "Linux", "Chromebook", 2),
)
# Store products and their USD price points; local prices are rounded the way stores round them.
_PRODUCTS = (
    ("gems_100", 0.99, 30), ("starter_pack", 2.99, 20), ("no_ads", 3.99, 8), ("gems_550", 4.99, 18),
    ("battle_pass", 9.99, 12), ("gems_1200", 9.99, 8), ("gems_6500", 49.99, 2),
)
_ITEMS = ("sword_iron", "shield_oak", "potion_health", "potion_mana", "booster_xp", "key_gold", "skin_dragon")
_AD_NETWORKS = ("admob", "unity", "applovin", "ironsource")
_INSTALL_SOURCES = ("organic", "organic", "organic", "google_ads", "meta_ads", "tiktok_ads", "cross_promo")
# Share of sessions starting in each UTC hour (an evening peak over the big markets).
_HOUR_WEIGHTS = (3, 2, 2, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 5, 5, 6, 7, 9, 10, 10, 8, 5)
_LEVEL_MILESTONES = {5: "level_5", 10: "level_10", 25: "level_25", 50: "level_50"}
_LAST_SESSION_START = timedelta(hours=23) - timedelta(seconds=1)
_MAX_SESSION = timedelta(seconds=2700)
LOYAL_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Player:
    """Who a simulated player is; fixed for the whole simulation."""

    index: int
    player_id: str
    arrival: datetime
    country: str
    locale: str
    currency: str
    platform: str
    os: str
    device: str
    install_source: str
    payer: bool
    skill: float
    engagement: float
    churn_hazard: float

    @property
    def loyal(self) -> bool:
        return self.churn_hazard == 0.0


@dataclass(slots=True)
class Progress:
    """How far a player has come; changes day by day."""

    level: int = 1
    days_played: int = 0
    streak: int = 0
    purchases: int = 0
    inventory: list[str] = field(default_factory=list)
    achievements: set[str] = field(default_factory=set)
    churned_on: date | None = None
    taste: Taste | None = None


@dataclass(frozen=True, slots=True)
class Day:
    """One simulated UTC day: its events in time order and the players who played."""

    date: date
    events: list[Event]
    active_players: frozenset[str]


class Simulation:
    """A population of `players` arriving over `arrival_days` days from `start` (UTC dates).

    Each player has a latent taste (`simulator.tastes`) that picks the items they acquire; with
    `tastes=False` every item is as likely for everyone, a game without structure to learn."""

    def __init__(self, *, seed: int, players: int, start: date, arrival_days: int, tastes: bool = True) -> None:
        if players < 1:
            raise ValueError("a simulation needs at least one player")
        self.seed = seed
        self.start = start
        self._key = f"{seed}:{start.isoformat()}"
        span = max(1, arrival_days)
        self.players = [self._player(i, span) for i in range(players)]
        self.progress = {
            p.player_id: Progress(taste=taste_of(random.Random(f"{self._key}:taste:{p.index}"), structured=tastes))
            for p in self.players
        }

    def days(self) -> Iterator[Day]:
        """Day after day from `start`, without end; each day depends on the ones before it."""
        day = self.start
        while True:
            yield self._day(day)
            day += timedelta(days=1)

    def _player(self, index: int, span: int) -> Player:
        rng = random.Random(f"{self._key}:player:{index}")
        country, locale, currency = _weighted(rng, _COUNTRIES)
        platform, os_name, device = _weighted(rng, _DEVICES)
        # Launch spike: most players come in the first days, a trickle after.
        arrival_day = min(span - 1, int(span * rng.random() ** 1.6))
        arrival = _midnight(self.start + timedelta(days=arrival_day)) + timedelta(
            seconds=rng.uniform(60, _LAST_SESSION_START.total_seconds())
        )
        loyal = index == 0 or rng.random() < LOYAL_SHARE
        return Player(
            index=index,
            player_id=f"player-{index:05d}-{hashlib.sha256(self._key.encode()).hexdigest()[:6]}",
            arrival=arrival,
            country=country,
            locale=locale,
            currency=currency,
            platform=platform,
            os=os_name,
            device=device,
            install_source=rng.choice(_INSTALL_SOURCES),
            payer=rng.random() < 0.12,
            skill=rng.uniform(0.35, 0.9),
            engagement=rng.uniform(0.75, 1.0) if loyal else rng.uniform(0.45, 0.9),
            churn_hazard=0.0 if loyal else rng.uniform(0.2, 0.7),
        )

    def _day(self, day: date) -> Day:
        events: list[Event] = []
        active: set[str] = set()
        for player in self.players:
            played = self._play_day(player, day)
            if played:
                active.add(player.player_id)
                events.extend(played)
        # A stable sort keeps each player's own order; timestamps share one fixed-width format.
        events.sort(key=lambda e: e["timestamp"])
        return Day(day, events, frozenset(active))

    def _play_day(self, player: Player, day: date) -> list[Event]:
        progress = self.progress[player.player_id]
        arrival_day = player.arrival.date()
        if day < arrival_day or progress.churned_on is not None:
            return []
        rng = random.Random(f"{self._key}:{player.index}:{day.isoformat()}")
        since_install = (day - arrival_day).days
        if since_install > 0:
            # Churn hazard falls with age: most players who leave, leave in the first days.
            if rng.random() < player.churn_hazard / math.sqrt(since_install):
                progress.churned_on = day
                return []
            if rng.random() > player.engagement:
                progress.streak = 0
                return []
        progress.days_played += 1
        progress.streak += 1
        if progress.taste is not None:
            progress.taste.drift(random.Random(f"{self._key}:{player.index}:{day.isoformat()}:drift"))
        journey = _Journey(rng, player, progress, app_version=f"1.{min(9, (day - self.start).days // 5)}.0",
                           taste_rng=random.Random(f"{self._key}:{player.index}:{day.isoformat()}:items"))
        starts = sorted(_midnight(day) + timedelta(hours=_weighted_hour(rng), seconds=rng.uniform(0, 3599))
                        for _ in range(rng.choices((1, 2, 3, 4), (45, 30, 17, 8))[0]))
        if since_install == 0:
            # The first session is the install itself; later ones that day follow it.
            journey.install(player.arrival)
            starts = [player.arrival, *(s for s in starts[1:] if s > player.arrival)]
        last_start = _midnight(day) + _LAST_SESSION_START
        free_from = _midnight(day)
        for index, start in enumerate(starts):
            start = max(start, free_from)
            if start > last_start:
                break
            free_from = journey.session(start, first_of_day=index == 0) + timedelta(minutes=rng.uniform(10, 90))
        return journey.events


class _Journey:
    """Builds one player's events for one day, clock advancing event by event."""

    def __init__(self, rng: random.Random, player: Player, progress: Progress, *, app_version: str,
                 taste_rng: random.Random) -> None:
        self.rng = rng
        self.player = player
        self.progress = progress
        self.events: list[Event] = []
        self.taste_rng = taste_rng
        self.context = {
            "platform": player.platform, "os": player.os, "app_version": app_version,
            "country": player.country, "device": player.device, "locale": player.locale,
        }

    def emit(self, when: datetime, event_type: str, properties: dict[str, Any], *,
             session_id: str | None = None, name: str | None = None) -> None:
        event: Event = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "event_type": event_type,
            "player_id": self.player.player_id,
            "timestamp": rfc3339(when),
            "properties": properties,
            "context": self.context,
        }
        if session_id is not None:
            event["session_id"] = session_id
        if name is not None:
            event["name"] = name
        self.events.append(event)

    def install(self, at: datetime) -> None:
        """The first launch: the profile traits arrive with an identify call."""
        self.emit(at - timedelta(seconds=1), "identify", {
            "install_source": self.player.install_source, "language": self.player.locale[:2],
            "first_app_version": self.context["app_version"], "payer": False,
        })

    def session(self, start: datetime, *, first_of_day: bool) -> datetime:
        """One session from `start`; returns when it ended."""
        rng, progress = self.rng, self.progress
        session_id = f"s-{rng.getrandbits(64):016x}"
        planned = min(_MAX_SESSION.total_seconds() - 300, rng.lognormvariate(math.log(420), 0.7))
        clock = start
        self.emit(clock, "session_start", {}, session_id=session_id)

        def step(low: float, high: float) -> datetime:
            nonlocal clock
            clock += timedelta(seconds=rng.uniform(low, high))
            return clock

        if progress.days_played == 1 and first_of_day:
            self.emit(step(5, 60), "custom", {"steps": 5}, session_id=session_id, name="tutorial_completed")
        elif first_of_day:
            self.emit(step(2, 10), "custom", {"day_streak": progress.streak}, session_id=session_id,
                      name="daily_reward_claimed")
        if progress.streak == 7:
            self._achieve(step(1, 3), "streak_7", session_id)
        while (clock - start).total_seconds() < planned:
            self._round(step, session_id)
            step(3, 20)
        end = step(2, 15)
        self.emit(end, "session_end", {"duration_seconds": round((end - start).total_seconds())},
                  session_id=session_id)
        return end

    def _round(self, step: Any, session_id: str) -> None:
        rng, progress = self.rng, self.progress
        if progress.inventory and rng.random() < 0.2:
            item = progress.inventory.pop(rng.randrange(len(progress.inventory)))
            self.emit(step(2, 10), "item_used", {"item_id": item, "quantity": 1}, session_id=session_id)
        level = progress.level
        self.emit(step(1, 4), "level_start", {"level": level}, session_id=session_id)
        played = round(rng.uniform(30, 240))
        when = step(played, played + 1)
        win_chance = min(0.95, max(0.15, self.player.skill + 0.25 - 0.012 * level))
        if rng.random() < win_chance:
            score = round(1000 + level * 150 * rng.uniform(0.6, 1.4))
            self.emit(when, "level_complete", {"level": level, "score": score, "duration_seconds": played},
                      session_id=session_id)
            progress.level += 1
            if level == 1:
                self._achieve(step(1, 2), "first_win", session_id)
            if level in _LEVEL_MILESTONES:
                self._achieve(step(1, 2), _LEVEL_MILESTONES[level], session_id)
            if rng.random() < 0.35:
                item = rng.choice(_ITEMS)
                if progress.taste is not None:  # drawn apart, so the day's other events stay as they were
                    item = progress.taste.pick(self.taste_rng).item_id
                progress.inventory.append(item)
                self.emit(step(1, 3), "item_acquired", {"item_id": item, "quantity": rng.randint(1, 3)},
                          session_id=session_id)
            if not self.player.payer and rng.random() < 0.12:
                self._ad(step, "interstitial", session_id)
        else:
            score = round(level * 150 * rng.uniform(0.1, 0.7))
            self.emit(when, "level_fail", {"level": level, "score": score, "duration_seconds": played},
                      session_id=session_id)
            if rng.random() < (0.15 if self.player.payer else 0.4):
                self._ad(step, "rewarded", session_id)
        if rng.random() < (0.08 if self.player.payer else 0.004):
            self._purchase(step, session_id)
        elif rng.random() < 0.02:
            self.emit(step(2, 8), "custom", {"tab": rng.choice(("featured", "gems", "skins"))},
                      session_id=session_id, name="shop_opened")
        if rng.random() < 0.01:
            self.emit(step(2, 8), "custom", {"channel": rng.choice(("link", "contacts", "discord"))},
                      session_id=session_id, name="friend_invited")

    def _achieve(self, when: datetime, achievement: str, session_id: str) -> None:
        if achievement not in self.progress.achievements:
            self.progress.achievements.add(achievement)
            self.emit(when, "achievement_unlocked", {"achievement_id": achievement}, session_id=session_id)

    def _ad(self, step: Any, placement: str, session_id: str) -> None:
        revenue = round(self.rng.uniform(0.002, 0.03 if placement == "rewarded" else 0.012), 5)
        self.emit(step(5, 30), "ad_impression", {
            "ad_network": self.rng.choice(_AD_NETWORKS), "placement": placement, "revenue_usd": revenue,
        }, session_id=session_id)

    def _purchase(self, step: Any, session_id: str) -> None:
        product, usd = _weighted(self.rng, _PRODUCTS)
        self.emit(step(5, 40), "custom", {"tab": "gems"}, session_id=session_id, name="shop_opened")
        self.emit(step(10, 60), "purchase", {
            "item_id": product, "price": local_price(usd, self.player.currency),
            "currency": self.player.currency, "quantity": 1,
        }, session_id=session_id)
        self.progress.purchases += 1
        if self.progress.purchases == 1:
            self._achieve(step(1, 2), "first_purchase", session_id)


def local_price(usd: float, currency: str) -> float:
    """A USD price point in `currency`, rounded as app stores do (x.99, or whole tens)."""
    local = usd / float(DEFAULT_FX_RATES_USD[currency])
    if local >= 100:
        return float(round(local, -1))
    return math.floor(local) + 0.99


def as_live(event: Event, at: datetime, salt: str) -> Event:
    """A copy of `event` happening `at`, its ids salted so a restarted stream sends new events."""
    live = {**event, "timestamp": rfc3339(at),
            "event_id": str(uuid.uuid5(uuid.UUID(event["event_id"]), salt))}
    if "session_id" in event:
        live["session_id"] = f"{event['session_id']}-{salt}"
    return live


def rfc3339(when: datetime) -> str:
    """UTC with milliseconds: one fixed width, so the strings sort in time order."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _weighted(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    row = rng.choices(table, weights=[r[-1] for r in table])[0]
    return row[:-1]


def _weighted_hour(rng: random.Random) -> int:
    return rng.choices(range(len(_HOUR_WEIGHTS)), weights=_HOUR_WEIGHTS)[0]
