"""The Bus contract on the embedded PostgreSQL log."""

from __future__ import annotations

import asyncio

from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform


async def drain(consumer, want: int, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    got = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        got.extend(await consumer.poll(1000, 0.2))
    return got


async def test_order_holds_per_key_across_concurrent_producers(platform: Platform) -> None:
    producer = platform.bus.producer()
    keys = [f"player-{i}".encode() for i in range(10)]

    async def send(chunk: int) -> None:
        await producer.send(RAW_EVENTS, [Message(k, f"{k.decode()}:{chunk}".encode()) for k in keys])

    for chunk in range(20):
        await asyncio.gather(send(chunk))
    consumer = platform.bus.consumer("g1", [RAW_EVENTS])
    records = await drain(consumer, 200)
    assert len(records) == 200
    seen: dict[bytes, list[int]] = {}
    for record in records:
        seen.setdefault(record.key, []).append(int(record.value.decode().split(":")[1]))
        assert record.partition == records[[r.key for r in records].index(record.key)].partition
    assert all(v == list(range(20)) for v in seen.values())
    await consumer.close()


async def test_uncommitted_records_are_delivered_again_after_a_crash(platform: Platform) -> None:
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), str(i).encode()) for i in range(50)])
    first = platform.bus.consumer("g2", [RAW_EVENTS])
    batch = await drain(first, 50)
    # Within a partition offsets follow send order, so committing the records of values < 20
    # commits exactly those; then "crash" without committing the rest.
    await first.commit([r for r in batch if int(r.value) < 20])
    await first.close()
    second = platform.bus.consumer("g2", [RAW_EVENTS])
    again = await drain(second, 30)
    assert sorted(int(r.value) for r in again) == list(range(20, 50))
    await second.close()


async def test_groups_are_independent_and_a_partition_has_one_owner(platform: Platform) -> None:
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"x") for i in range(40)])
    a = platform.bus.consumer("ga", [RAW_EVENTS])
    b = platform.bus.consumer("gb", [RAW_EVENTS])
    assert len(await drain(a, 40)) == 40
    assert len(await drain(b, 40)) == 40
    # A second member of group ga finds every partition owned and reads nothing while a is alive.
    a2 = platform.bus.consumer("ga", [RAW_EVENTS])
    assert await a2.poll(100, 0.3) == []
    await a.close()
    # a left without committing: a2 takes over its partitions and gets everything again.
    await asyncio.sleep(2.1)
    assert len(await drain(a2, 40)) == 40
    for c in (a2, b):
        await c.close()


async def test_lag_and_trim_follow_committed_positions(platform: Platform) -> None:
    producer = platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), b"x") for i in range(30)])
    consumer = platform.bus.consumer("gl", [RAW_EVENTS])
    records = await drain(consumer, 30)
    await consumer.commit(records)
    lags = [lag for lag in await platform.bus.lag() if lag.group_id == "gl"]
    assert sum(lag.lag for lag in lags) == 0
    assert sum(lag.end for lag in lags) == 30
    assert await platform.bus.trim(retention_hours=24) == 30
    await consumer.close()
