"""Ingest's refusals of a tenant's game over a period, by reason and by day, as the analytics API's
`ingestRefusals` answers them for the operator's token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gamemetrics.services.dashboard.periods import Period

# What each reason means to the person reading the page; an unknown reason shows as it is stored.
LABELS = {
    "invalid_schema": "invalid event (fields or types)",
    "unknown_event_type": "unknown event type",
    "event_too_large": "event too large",
    "timestamp_in_future": "timestamp in the future",
    "timestamp_too_old": "timestamp too old (send history to /v1/import)",
    "too_large": "request too large (bytes or events)",
    "malformed_request": "unreadable request (JSON, gzip, content type)",
    "rate_limited": "rate limited",
    "revoked_key": "revoked write key",
    "forbidden": "not allowed for this key (import, other game)",
    "unavailable": "platform unavailable (bus, rate limiter)",
}


@dataclass(frozen=True, slots=True)
class RefusalReason:
    """One reason's totals over the period and its refused requests per day."""

    reason: str
    events: int
    requests: int
    daily: list[tuple[str, float | None]]

    @property
    def label(self) -> str:
        return LABELS.get(self.reason, self.reason)


REFUSALS_QUERY = """query ($g: ID!, $from: Date!, $to: Date!) {
  ingestRefusals(gameId: $g, from: $from, to: $to) { date reason events requests }
}"""


def rows_of(data: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(day, reason, events, requests) of the analytics API's `ingestRefusals` answer."""
    return [(str(r["date"]), str(r["reason"]), int(r["events"]), int(r["requests"]))
            for r in data.get("ingestRefusals") or []]


def by_reason(rows: list[tuple[str, str, int, int]], period: Period) -> list[RefusalReason]:
    """The reasons of `rows` with their totals and a point per day of the period, most requests first."""
    days = [d.isoformat() for d in period.dates()]
    totals: dict[str, list[int]] = {}
    per_day: dict[str, dict[str, int]] = {}
    for day, reason, events, requests in rows:
        total = totals.setdefault(reason, [0, 0])
        total[0] += events
        total[1] += requests
        per_day.setdefault(reason, {})[day] = requests
    reasons = [RefusalReason(reason, events, requests, [(d, float(per_day[reason].get(d, 0))) for d in days])
               for reason, (events, requests) in totals.items()]
    return sorted(reasons, key=lambda r: (-r.requests, r.reason))


def rows_csv(rows: list[tuple[str, str, int, int]]) -> str:
    """The refusals as CSV: a header, then one `date,reason,events,requests` line per day and reason."""
    lines = ["date,reason,events,requests"] + [f"{d},{r},{e},{n}" for d, r, e, n in rows]
    return "\r\n".join(lines) + "\r\n"
