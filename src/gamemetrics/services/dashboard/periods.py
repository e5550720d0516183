"""Date ranges of the overview: the presets, a custom range, and the period just before one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

PRESETS = {"today": 1, "7d": 7, "30d": 30, "90d": 90}
MAX_DAYS = 366


class BadRange(ValueError):
    """A range the overview cannot show; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Period:
    """UTC days `start` to `end`, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]


def parse_period(query: Mapping[str, str], today: date) -> tuple[str, Period]:
    """The preset name (or "custom") and the period a query string asks for; 7 days when it asks none."""
    name = query.get("range", "7d")
    if name in PRESETS:
        return name, Period(today - timedelta(days=PRESETS[name] - 1), today)
    if name != "custom":
        raise BadRange(f"unknown range {name!r}; choose one of {', '.join(PRESETS)} or custom")
    try:
        start, end = date.fromisoformat(query.get("from", "")), date.fromisoformat(query.get("to", ""))
    except ValueError:
        raise BadRange("a custom range needs from and to as dates (YYYY-MM-DD)") from None
    if end < start:
        raise BadRange(f"the range ends ({end}) before it starts ({start})")
    if end > today:
        raise BadRange(f"the range ends in the future ({end}); the last day with data is today, {today}")
    period = Period(start, end)
    if period.days > MAX_DAYS:
        raise BadRange(f"a range covers at most {MAX_DAYS} days, not {period.days}")
    return "custom", period
