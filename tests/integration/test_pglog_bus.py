"""What only the embedded PostgreSQL log does; the Bus contract itself is in test_bus_contract.py."""

from __future__ import annotations

import asyncio

from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform
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
