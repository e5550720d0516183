"""What only the embedded PostgreSQL log does; the Bus contract itself is in test_bus_contract.py."""

from __future__ import annotations

import asyncio

from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform
from tests.integration.test_bus_contract import drain


async def test_the_first_member_owns_every_free_partition_until_it_leaves(platform: Platform) -> None:
    # No rebalancing: a member holds the advisory locks of every partition it found free.
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"x") for i in range(40)])
    a = platform.bus.consumer("ga", [RAW_EVENTS])
    assert len(await drain(a, 40)) == 40
    a2 = platform.bus.consumer("ga", [RAW_EVENTS])
    assert await a2.poll(100, 0.3) == []
    assert a2.assignment == []
    await a.close()
    # a left without committing: a2 claims its partitions within the claim interval and reads everything.
    await asyncio.sleep(2.1)
    assert len(await drain(a2, 40)) == 40
    await a2.close()


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
