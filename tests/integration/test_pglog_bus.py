"""What only the embedded PostgreSQL log does; the Bus contract itself is in test_bus_contract.py."""

from __future__ import annotations

import asyncio
import json
import uuid

from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.adapters.pglog.batches import decode_batch
from gamemetrics.adapters.pglog.partitioner import partition_for
from gamemetrics.ports.bus import RAW_EVENTS, Message, Record
from gamemetrics.runtime import Platform, topic_partitions
from gamemetrics.settings import Settings
from tests.integration.test_bus_contract import drain


async def test_members_share_the_partitions_evenly_and_the_survivor_takes_all_back(platform: Platform) -> None:
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"x") for i in range(40)])
    a = platform.bus.consumer("ga", [RAW_EVENTS])
    assert len(await drain(a, 40)) == 40  # alone, a holds every partition
    everything = a.assignment
    b = platform.bus.consumer("ga", [RAW_EVENTS])
    # Within two claim rounds a sees the second member and lets half go, and b claims them.
    for _ in range(60):
        await a.poll(100, 0.0)
        await b.poll(100, 0.0)
        if len(b.assignment) == len(everything) // 2:
            break
        await asyncio.sleep(0.1)
    assert len(a.assignment) == len(b.assignment) == len(everything) // 2
    assert sorted(a.assignment + b.assignment) == everything
    await a.close()
    # a left: b claims the partitions it let go within the claim interval.
    for _ in range(60):
        await b.poll(100, 0.0)
        if b.assignment == everything:
            break
        await asyncio.sleep(0.1)
    assert b.assignment == everything
    await b.close()


async def test_trim_deletes_the_batches_every_group_has_passed(platform: Platform) -> None:
    assert isinstance(platform.bus, PgLogBus)
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"first") for i in range(10)])
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"second") for i in range(20)])
    consumer = platform.bus.consumer("gl", [RAW_EVENTS])
    records = await drain(consumer, 30)
    await consumer.commit([r for r in records if r.value == b"first"])
    await consumer.close()
    assert await platform.bus.trim(retention_hours=24) == 10
    # A batch the group is still inside stays whole until every entry of it is passed.
    second = [r for r in records if r.value == b"second"]
    await platform.bus.consumer("gl", [RAW_EVENTS]).commit(second[:1])
    assert await platform.bus.trim(retention_hours=24) == 0
    consumer = platform.bus.consumer("gl", [RAW_EVENTS])
    rest = await drain(consumer, 19, commit=True)
    await consumer.close()
    assert sorted((r.partition, r.offset) for r in rest) == sorted((r.partition, r.offset) for r in second[1:])
    assert await platform.bus.trim(retention_hours=24) == 20


async def test_erase_removes_only_that_keys_entries_from_compressed_batches(platform: Platform,
                                                                           settings: Settings) -> None:
    bus = platform.bus
    assert isinstance(bus, PgLogBus)
    erased = b"player-7"
    # player-70..79 hold the erased key's bytes: batches with them match the search, and must keep them.
    keys = [f"player-{i}".encode() for i in range(100)]
    partitions = topic_partitions(settings)[RAW_EVENTS]
    assert any(partition_for(k, partitions) == partition_for(erased, partitions) for k in keys if k != erased)
    producer = bus.producer()
    await producer.send(RAW_EVENTS, [Message(keys[i % 100], f"v{i}".encode(), {"n": str(i)}) for i in range(1000)])
    await producer.send(RAW_EVENTS, [Message(erased, b"alone")])  # a batch of the erased key's only
    before = await drain(bus.consumer("before", [RAW_EVENTS]), 1001)
    assert len(before) == 1001

    async with platform.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM bus_log WHERE topic = %s", (RAW_EVENTS,))
        rows = (await cur.fetchone())[0]
    # With a match, only the entries of the key whose value matches go; an emptied batch goes whole.
    assert await bus.erase(RAW_EVENTS, erased, lambda value: value == b"alone") == 1
    assert await bus.erase(RAW_EVENTS, erased) == 10
    assert await bus.erase(RAW_EVENTS, erased) == 0

    consumer = bus.consumer("after", [RAW_EVENTS])
    after = await drain(consumer, 990)
    assert await consumer.poll(1000, 0.2) == []
    await consumer.close()

    def seen(records: list[Record]) -> list[tuple[int, int, bytes, bytes, dict[str, str]]]:
        return sorted((r.partition, r.offset, r.key, r.value, dict(r.headers)) for r in records)

    assert seen(after) == seen([r for r in before if r.key != erased])
    async with platform.pool.connection() as conn:
        cur = await conn.execute("SELECT keys, records FROM bus_log WHERE topic = %s", (RAW_EVENTS,))
        stored = await cur.fetchall()
    assert len(stored) == rows - 1
    # Each rewritten batch's keys name exactly the entries it kept, so the erased key is gone from them too.
    for keys_column, records in stored:
        assert bytes(keys_column) == b"".join(dict.fromkeys(e.key for e in decode_batch(bytes(records))))


async def test_batches_are_stored_compressed(platform: Platform) -> None:
    values = [json.dumps({"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": f"p{i % 20}",
                          "context": {"platform": "android", "country": "FR", "app_version": "2.0.1"}}).encode()
              for i in range(1000)]
    await platform.bus.producer().send(RAW_EVENTS, [Message(f"p{i % 20}".encode(), v) for i, v in enumerate(values)])
    async with platform.pool.connection() as conn:
        cur = await conn.execute("SELECT sum(pg_column_size(records)) FROM bus_log WHERE topic = %s", (RAW_EVENTS,))
        stored = (await cur.fetchone())[0]
    assert stored * 4 < sum(map(len, values)), stored
