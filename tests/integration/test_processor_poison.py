"""An event the database refuses is dead-lettered alone; the events around it are stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message


async def test_a_refused_event_is_isolated_and_dead_lettered(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    # A constraint the validator knows nothing about stands in for any value the store refuses.
    async with platform.pool.connection() as conn:
        await conn.execute("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (player_id <> 'poison')")
    now = datetime.now(UTC)
    players = [f"p{i}" for i in range(20)]
    players[13] = "poison"
    messages = [
        raw_message(write_key, {"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": player,
                                "timestamp": (now - timedelta(seconds=5)).isoformat()})
        for player in players
    ]
    await platform.bus.producer().send(RAW_EVENTS, messages)

    processor = make_processor(platform, settings)
    for _ in range(20):
        await processor.process_once()
    async with platform.pool.connection() as conn:
        stored = await (await conn.execute("SELECT player_id FROM events ORDER BY player_id")).fetchall()
        letters = await (await conn.execute("SELECT reason, tenant_id FROM dead_letters")).fetchall()
        cur = await conn.execute("SELECT events_stored, events_dead_lettered FROM game_counters")
        counters = await cur.fetchone()
    assert sorted(p for (p,) in stored) == sorted(p for p in players if p != "poison")
    assert len(letters) == 1
    assert "no_poison" in letters[0][0] and letters[0][1] == write_key.tenant_id
    assert counters == (19, 1)
    assert sum(lag.lag for lag in await platform.bus.lag() if lag.group_id == "processor") == 0


async def test_the_batch_table_is_typed_as_events(platform: Platform) -> None:
    # The processor's temporary table is declared from the column spec (see processor.columns), not
    # `LIKE events`; it must not drift from `events`.
    from gamemetrics.services.processor.columns import BATCH_COLUMNS, EVENT_COLUMNS
    from gamemetrics.services.processor.sink import _NEW_EVENTS

    query = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a"
             " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")
    async with platform.pool.connection() as conn, conn.transaction():
        await conn.execute(_NEW_EVENTS)
        batch = await (await conn.execute(query, ("new_events",))).fetchall()
        events = await (await conn.execute(query, ("events",))).fetchall()
        # ...and the binary COPY into it names the same types, column by column.
        copied = await (await conn.execute(
            "SELECT format_type(t::regtype, NULL) FROM unnest(%s::text[]) AS t",
            (list(BATCH_COLUMNS.copy_types),))).fetchall()
    assert [row[0] for row in batch] == list(BATCH_COLUMNS.names)
    assert batch[:len(EVENT_COLUMNS)] == [row for row in events if row[0] in EVENT_COLUMNS.names]
    assert [t for (t,) in copied] == [row[1].split("(")[0] for row in batch]


async def test_numbers_are_stored_as_sent_and_one_beyond_the_stores_range_is_dead_lettered(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    # Properties reach jsonb as the game wrote them: 1e400 (beyond a double) is kept exactly, and a
    # number beyond PostgreSQL's numeric range is refused by the store alone, with its reason.
    now = datetime.now(UTC)
    bodies = {player: b'{"event_id": "%s", "event_type": "custom", "name": "n", "player_id": "%s",'
                      b' "timestamp": "%s", "properties": {"x": %s}}'
              % (str(uuid.uuid4()).encode(), player.encode(), (now - timedelta(seconds=5)).isoformat().encode(), x)
              for player, x in (("big", b"1e400"), ("huge", b"1e999999"), ("plain", b"2"))}
    messages = [
        Message(partition_key(write_key.tenant_id, player), msgspec.json.encode(
            RawEnvelope(write_key.tenant_id, write_key.game_id, now, msgspec.Raw(body))))
        for player, body in bodies.items()
    ]
    await platform.bus.producer().send(RAW_EVENTS, messages)

    processor = make_processor(platform, settings)
    for _ in range(20):
        await processor.process_once()
    async with platform.pool.connection() as conn:
        cur = await conn.execute("SELECT player_id, properties->'x' = '1e400'::jsonb FROM events ORDER BY 1")
        stored = await cur.fetchall()
        letters = await (await conn.execute("SELECT reason FROM dead_letters")).fetchall()
    assert stored == [("big", True), ("plain", False)]
    assert len(letters) == 1 and "numeric" in letters[0][0], letters
