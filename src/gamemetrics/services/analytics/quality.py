"""Data quality of a game: ingest's refusals per day and reason, the dead letters grouped by the
kind of their reason, and the letters themselves, inside a tenant transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta

from gamemetrics.services.analytics.queries import Conn, _rows, midnight
from gamemetrics.services.analytics.types import DeadLetter, DeadLetterReason, RefusalDay

# Reasons name the value they refused (a timestamp, a number); grouped without them, letters of one
# cause fall into one group.
KIND = (r"regexp_replace(regexp_replace(d.reason, '\d{4}-\d\d-\d\dT[0-9:.]+(\+00:00|Z)?', '<time>', 'g'),"
        r" '\m\d+(\.\d+)?\M', 'N', 'g')")
MAX_KINDS = 200


async def refusals(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, days: Sequence[date]) -> list[RefusalDay]:
    """The game's refusals on each day of `days` that has any, by day then reason."""
    start = midnight(days[0])
    rows = await _rows(
        conn,
        "SELECT (hour AT TIME ZONE 'UTC')::date AS day, reason, sum(events)::bigint, sum(requests)::bigint"
        " FROM ingest_refusals WHERE tenant_id = %s AND game_id = %s AND hour >= %s AND hour < %s"
        " GROUP BY day, reason ORDER BY day, reason",
        (tenant, game, start, start + timedelta(days=len(days))))
    return [RefusalDay(date=d, reason=r, events=int(e), requests=int(n)) for d, r, e, n in rows]


async def dead_letter_reasons(conn: Conn, tenant: uuid.UUID, game: uuid.UUID) -> list[DeadLetterReason]:
    """Every kind of reason of the game's letters with how many, how many replayed, and the latest."""
    rows = await _rows(
        conn,
        f"SELECT {KIND} AS kind, count(*), count(r.letter_id), max(d.created_at) FROM dead_letters d"
        " LEFT JOIN dead_letter_replays r ON r.letter_id = d.id"
        " WHERE d.tenant_id = %s AND d.game_id = %s GROUP BY kind ORDER BY count(*) DESC, kind LIMIT %s",
        (tenant, game, MAX_KINDS))
    return [DeadLetterReason(reason=k, letters=n, replayed=r, last_at=t) for k, n, r, t in rows]


async def dead_letters(conn: Conn, tenant: uuid.UUID, game: uuid.UUID, reason: str, limit: int) -> list[DeadLetter]:
    """The newest letters of one kind of reason (as `dead_letter_reasons` names it), with their bytes."""
    rows = await _rows(
        conn,
        "SELECT d.id, d.event_id, d.reason, d.created_at, d.payload, r.replayed_at, r.replayed_by"
        " FROM dead_letters d LEFT JOIN dead_letter_replays r ON r.letter_id = d.id"
        f" WHERE d.tenant_id = %s AND d.game_id = %s AND {KIND} = %s ORDER BY d.id DESC LIMIT %s",
        (tenant, game, reason, limit))
    return [DeadLetter(letter_id=i, event_id=e, reason=why, created_at=at,
                       payload=bytes(p).decode("utf-8", "replace"), replayed_at=ra, replayed_by=rb)
            for i, e, why, at, p, ra, rb in rows]
