"""The overview's figures: one number per metric for a period, from the analytics API's daily answers.

Pure arithmetic over the GraphQL answers, so the tiles hold the same numbers the API gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

OVERVIEW_QUERY = """
query Overview($game: ID!, $from: Date!, $to: Date!) {
  dau: activeUsers(gameId: $game, from: $from, to: $to, window: DAY) { date value }
  wau: activeUsers(gameId: $game, from: $from, to: $to, window: WEEK) { date value }
  mau: activeUsers(gameId: $game, from: $from, to: $to, window: MONTH) { date value }
  newPlayers(gameId: $game, from: $from, to: $to) { date value }
  revenue(gameId: $game, from: $from, to: $to) { date gross payers dau }
  sessions(gameId: $game, from: $from, to: $to) { date sessions averageLengthSeconds }
}
"""


@dataclass(frozen=True, slots=True)
class Metric:
    """A tile: its key, its label, how it is shown and how it is computed."""

    key: str
    label: str
    unit: str  # "count", "usd", "share" or "seconds"
    help: str


METRICS: tuple[Metric, ...] = (
    Metric("dau", "DAU", "count", "average daily active players"),
    Metric("wau", "WAU", "count", "players active in the 7 days to the last day"),
    Metric("mau", "MAU", "count", "players active in the 30 days to the last day"),
    Metric("new_players", "New players", "count", "players first active in the range"),
    Metric("revenue", "Revenue", "usd", "gross purchase revenue"),
    Metric("arpdau", "ARPDAU", "usd", "revenue / sum of daily active players"),
    Metric("arppu", "ARPPU", "usd", "revenue / sum of daily payers"),
    Metric("conversion", "Conversion", "share", "sum of daily payers / sum of daily active players"),
    Metric("sessions", "Sessions", "count", "sessions started"),
    Metric("avg_session", "Avg session", "seconds", "average session length"),
)


def _ratio(top: Decimal | float, bottom: float) -> float | None:
    return float(top) / bottom if bottom else None


def figures(data: Mapping[str, Any]) -> dict[str, float | None]:
    """Every metric's number for the period an `OVERVIEW_QUERY` answer covers."""
    dau = [int(d["value"]) for d in data["dau"]]
    revenue = sum((Decimal(str(d["gross"])) for d in data["revenue"]), Decimal(0))
    payers = sum(int(d["payers"]) for d in data["revenue"])
    active = sum(int(d["dau"]) for d in data["revenue"])
    sessions = [d for d in data["sessions"]]
    count = sum(int(d["sessions"]) for d in sessions)
    length = sum(float(d["averageLengthSeconds"]) * int(d["sessions"]) for d in sessions
                 if d["averageLengthSeconds"] is not None)
    return {
        "dau": sum(dau) / len(dau) if dau else None,
        "wau": float(data["wau"][-1]["value"]) if data["wau"] else None,
        "mau": float(data["mau"][-1]["value"]) if data["mau"] else None,
        "new_players": float(sum(int(d["value"]) for d in data["newPlayers"])),
        "revenue": float(revenue),
        "arpdau": _ratio(revenue, active),
        "arppu": _ratio(revenue, payers),
        "conversion": _ratio(payers, active),
        "sessions": float(count),
        "avg_session": _ratio(length, count),
    }


def series(data: Mapping[str, Any]) -> dict[str, list[tuple[str, float | None]]]:
    """Per metric, its value on each day of the period (for the charts and their CSV)."""
    out: dict[str, list[tuple[str, float | None]]] = {
        "dau": [(d["date"], float(d["value"])) for d in data["dau"]],
        "wau": [(d["date"], float(d["value"])) for d in data["wau"]],
        "mau": [(d["date"], float(d["value"])) for d in data["mau"]],
        "new_players": [(d["date"], float(d["value"])) for d in data["newPlayers"]],
        "revenue": [(d["date"], float(d["gross"])) for d in data["revenue"]],
        "arpdau": [(d["date"], _ratio(Decimal(str(d["gross"])), int(d["dau"]))) for d in data["revenue"]],
        "arppu": [(d["date"], _ratio(Decimal(str(d["gross"])), int(d["payers"]))) for d in data["revenue"]],
        "conversion": [(d["date"], _ratio(int(d["payers"]), int(d["dau"]))) for d in data["revenue"]],
        "sessions": [(d["date"], float(d["sessions"])) for d in data["sessions"]],
        "avg_session": [(d["date"], d["averageLengthSeconds"]) for d in data["sessions"]],
    }
    return out


def change(now: float | None, before: float | None) -> float | None:
    """The relative change from `before` to `now` (0.1 = +10 %); None when it has no meaning."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before


def shown(value: float | None, unit: str) -> str:
    """A figure as a tile shows it."""
    if value is None:
        return "–"
    if unit == "usd":
        return f"${value:,.2f}"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "seconds":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def shown_change(delta: float | None) -> str:
    return "–" if delta is None else f"{delta * 100:+.1f} %"


def rows_csv(points: Sequence[tuple[str, float | None]], name: str) -> str:
    """A chart's data as CSV: a header, then one `date,value` line per day (empty when unknown)."""
    lines = [f"date,{name}"] + [f"{day},{'' if value is None else repr(float(value))}" for day, value in points]
    return "\r\n".join(lines) + "\r\n"
