"""A player's notification preferences: opt-outs per category and channel, quiet hours in their
time zone, daily caps per channel; checked from what the API sends, applied when a notification is
accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gamemetrics.services.notifier.templates import CHANNEL_FIELDS

SHAPE = ('send {"categories": {"<category>": {"<channel>": true|false}}, "quiet_hours": {"start": "22:00",'
         ' "end": "08:00", "timezone": "Europe/Helsinki"}, "daily_cap": {"<channel>": n}}')


class PreferencesInvalid(ValueError):
    """Preferences that cannot be stored; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str

    def until(self, moment: datetime) -> datetime | None:
        """When the quiet hours around `moment` (aware) end, or None when `moment` is outside them."""
        zone = ZoneInfo(self.timezone)
        local = moment.astimezone(zone)
        now = local.time().replace(tzinfo=None)
        overnight = self.start > self.end
        inside = (now >= self.start or now < self.end) if overnight else self.start <= now < self.end
        if not inside or self.start == self.end:
            return None
        day = local.date() + timedelta(days=1) if overnight and now >= self.start else local.date()
        return datetime.combine(day, self.end, zone)

    def json(self) -> dict[str, str]:
        def clock(t: time) -> str:
            return t.strftime("%H:%M:%S" if t.second else "%H:%M")

        return {"start": clock(self.start), "end": clock(self.end), "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class Preferences:
    categories: dict[str, dict[str, bool]] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    daily_caps: dict[str, int] = field(default_factory=dict)

    def allows(self, category: str, channel: str) -> bool:
        return self.categories.get(category, {}).get(channel, True) is not False

    def json(self) -> dict[str, Any]:
        return {"categories": self.categories, "quiet_hours": self.quiet_hours.json() if self.quiet_hours else None,
                "daily_cap": self.daily_caps}


def _clock(where: str, value: Any) -> time:
    try:
        if not isinstance(value, str) or len(value) not in (5, 8):  # HH:MM, or HH:MM:SS
            raise ValueError
        return time.fromisoformat(value)
    except ValueError:
        raise PreferencesInvalid(f"quiet_hours.{where} is a time of day as HH:MM, e.g. 22:00") from None


def quiet_hours_of(value: Any) -> QuietHours | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"start", "end", "timezone"}:
        raise PreferencesInvalid('quiet_hours is {"start": "22:00", "end": "08:00", "timezone": "Europe/Helsinki"}')
    zone = value["timezone"]
    try:
        if not isinstance(zone, str) or not zone:
            raise ValueError
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise PreferencesInvalid(f"quiet_hours.timezone {zone!r} is not an IANA time zone") from None
    return QuietHours(_clock("start", value["start"]), _clock("end", value["end"]), zone)


def parse_preferences(body: Any) -> Preferences:
    """The preferences `body` describes; PreferencesInvalid says what is wrong."""
    if not isinstance(body, dict) or set(body) - {"categories", "quiet_hours", "daily_cap"}:
        raise PreferencesInvalid(SHAPE)
    categories = body.get("categories", {})
    if not isinstance(categories, dict) or len(categories) > 100:
        raise PreferencesInvalid("categories is an object of at most 100 categories")
    for category, channels in categories.items():
        if not isinstance(channels, dict) or not all(isinstance(v, bool) for v in channels.values()):
            raise PreferencesInvalid(f"categories.{category} maps channels to true or false")
        unknown = set(channels) - set(CHANNEL_FIELDS)
        if unknown:
            raise PreferencesInvalid(f"categories.{category}: unknown channels {', '.join(sorted(unknown))}")
    caps = body.get("daily_cap", {})
    if not isinstance(caps, dict) or not all(
            c in CHANNEL_FIELDS and isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10_000
            for c, n in caps.items()):
        raise PreferencesInvalid(f"daily_cap maps channels ({', '.join(CHANNEL_FIELDS)}) to 0-10000 messages a day")
    return Preferences(categories, quiet_hours_of(body.get("quiet_hours")), dict(caps))


def stored_preferences(categories: Any, quiet_hours: Any, daily_caps: Any) -> Preferences:
    """Preferences as a row keeps them (checked when they were written)."""
    return Preferences(dict(categories or {}), quiet_hours_of(quiet_hours), dict(daily_caps or {}))
