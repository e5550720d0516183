"""The daily totals the processor keeps (game_days) always equal the sums over player_days: after
batches that add players and turn players into payers, after a replayed batch, after late
events, and after an erasure deletes a player's rows (then the deleted-player counter moves,
which is what tells the analytics caches to forget)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from gamemetrics.runtime import Platform
from gamemetrics.services.processor.decode import EventRow
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.users.holdings import delete_player
from gamemetrics.tenancy.store import CreatedKey

DAY0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _row(key: CreatedKey, player: str, at: datetime, kind: str, price: str | None = None) -> EventRow:
    return EventRow(
        tenant_id=key.tenant_id, game_id=key.game_id, event_id=uuid.uuid4(), event_type=kind, event_name=None,
        player_id=player, session_id=None, event_time=at, received_at=at, source="live", platform=None, os=None,
        app_version=None, country=None, revenue_usd=Decimal(price) if price is not None else None,
        properties=b"{}", context=b"{}",
    )


def _mismatch(url: str, tenant: uuid.UUID) -> list[tuple[object, ...]]:
    """Days where game_days differs from what player_days sums to (both directions)."""
    expected = ("SELECT day, count(*)::int, (count(*) FILTER (WHERE revenue_usd > 0))::int, sum(purchases)::int,"
                " sum(revenue_usd) FROM player_days WHERE tenant_id = %(t)s GROUP BY day")
    # A day whose players were all erased keeps a row of zeros: it compares as no row.
    actual = ("SELECT day, active_players, payers, purchases, revenue_usd FROM game_days WHERE tenant_id = %(t)s"
              " AND active_players <> 0")
    with psycopg.connect(url) as conn:
        return conn.execute(f"({expected} EXCEPT ALL {actual}) UNION ALL ({actual} EXCEPT ALL {expected})",
                            {"t": tenant}).fetchall()


async def test_daily_totals_follow_batches_replays_late_events_and_erasure(
    platform: Platform, write_key: CreatedKey, database_url: str
) -> None:
    sink = EventSink(platform.pool, session_gap=timedelta(minutes=30))
    rng = random.Random(4)
    batches = []
    for b in range(6):
        batch = []
        for _ in range(120):
            player = f"p{rng.randrange(15)}"
            at = DAY0 + timedelta(days=rng.randrange(5), minutes=rng.randrange(600))
            kind = rng.choice(["session_start", "level_start", "purchase", "purchase", "identify"])
            price = rng.choice(["0", "0.99", "4.99"]) if kind == "purchase" else None
            batch.append(_row(write_key, player, at, kind, price))
        if b == 5:  # late events: days before everything else
            batch = [_row(write_key, f"p{i}", DAY0 - timedelta(days=3), "purchase", "1.50") for i in range(5)]
        batches.append(batch)
    for batch in batches:
        await sink.write(batch, [])
        assert _mismatch(database_url, write_key.tenant_id) == []
    await sink.write(batches[2], [])  # replayed after a crash: stores nothing, changes nothing
    assert _mismatch(database_url, write_key.tenant_id) == []

    with psycopg.connect(database_url) as conn:
        totals = conn.execute("SELECT sum(active_players), sum(payers), sum(revenue_usd) FROM game_days").fetchone()
        assert totals[0] > 15 and totals[1] > 0 and totals[2] > 0
        assert conn.execute("SELECT players_deleted FROM game_counters").fetchone() == (0,)

    async with platform.pool.connection() as conn, conn.transaction():
        await delete_player(conn, write_key.tenant_id, write_key.game_id, "p3")
    assert _mismatch(database_url, write_key.tenant_id) == []
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT players_deleted FROM game_counters").fetchone() == (1,)
        after = conn.execute("SELECT sum(active_players) FROM game_days").fetchone()[0]
    assert after < totals[0]
