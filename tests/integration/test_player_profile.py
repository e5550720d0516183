"""A player's stored profile (platform, os, country, app version, current session) is the one of
their latest event that carried each field, whatever order a batch's events arrive in."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from gamemetrics.runtime import Platform
from gamemetrics.services.processor.decode import EventRow
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.tenancy.store import CreatedKey

START = datetime(2026, 11, 1, 12, tzinfo=UTC)
FIELDS = {"platform": ["ios", "android", None], "os": ["ios", "windows", None], "country": ["DE", "JP", None],
          "app_version": ["1.0", "1.1", None]}


def _row(key: CreatedKey, rng: random.Random, player: str, at: datetime) -> EventRow:
    values = {field: rng.choice(choices) for field, choices in FIELDS.items()}
    return EventRow(key.tenant_id, key.game_id, uuid.uuid4(), "level_start", None, player, None, at, at, "live",
                    values["platform"], values["os"], values["app_version"], values["country"], None, b"{}", b"{}")


async def test_the_profile_follows_each_fields_latest_value_across_shuffled_batches(
    platform: Platform, write_key: CreatedKey, database_url: str
) -> None:
    sink = EventSink(platform.pool, session_gap=timedelta(minutes=30))
    rng = random.Random(7)
    for batch in range(4):
        # Each batch comes after the one before it, in a shuffled order of its own.
        rows = [_row(write_key, rng, f"p{rng.randrange(8)}", START + timedelta(hours=batch, minutes=rng.randrange(50)))
                for _ in range(80)]
        rng.shuffle(rows)
        assert (await sink.write(rows, [])).stored == len(rows)

    latest = ", ".join(f"(array_agg({field} ORDER BY event_time DESC) FILTER (WHERE {field} IS NOT NULL))[1]"
                       for field in FIELDS)
    with psycopg.connect(database_url) as conn:
        expected = conn.execute(
            f"SELECT player_id, {latest}, (array_agg(session_id ORDER BY event_time DESC))[1], max(event_time)"
            " FROM events WHERE tenant_id = %s GROUP BY player_id ORDER BY player_id", (write_key.tenant_id,),
        ).fetchall()
        stored = conn.execute(
            f"SELECT player_id, {', '.join(FIELDS)}, current_session_id, last_seen FROM players WHERE tenant_id = %s"
            " ORDER BY player_id", (write_key.tenant_id,),
        ).fetchall()
    assert len(expected) == 8
    assert stored == expected
