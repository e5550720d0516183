"""The Bus contract, run against both adapters: the embedded PostgreSQL log and a real Kafka broker.

Whatever the adapter: one key keeps its order, a group's members never own the same partition,
groups read independently, a commit is a position that only moves forward, what was not committed
is delivered again to the next owner, and the processor routes bad events to the DLQ with a reason.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Consumer, Message, Record
from gamemetrics.runtime import Platform, topic_partitions
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from tests.tracing import Spans

pytestmark = pytest.mark.timeout(120)

# Every bounded wait here gives up after this long and fails saying what it saw.
PATIENCE_S = 30.0
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def drain(consumer: Consumer, want: int, *, commit: bool = False) -> list[Record]:
    """Poll until `want` records arrived (bounded); commit each batch if asked."""
    got: list[Record] = []
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        batch = await consumer.poll(1000, 0.2)
        got.extend(batch)
        if commit and batch:
            await consumer.commit(batch)
    return got


async def poll_until(
    members: list[Consumer], done: Callable[[dict[int, list[Record]]], bool], what: str
) -> dict[int, list[Record]]:
    """Poll every member in turn (each must keep polling to take part in rebalances) until `done(seen)`."""
    seen: dict[int, list[Record]] = {i: [] for i in range(len(members))}
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not done(seen):
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        for i, member in enumerate(members):
            seen[i].extend(await member.poll(1000, 0.1))
    return seen


def values(records: list[Record]) -> list[int]:
    return [int(r.value) for r in records]


async def test_order_holds_per_key_across_concurrent_producers(bus_platform: Platform) -> None:
    producer = bus_platform.bus.producer()
    keys = [f"player-{i}".encode() for i in range(12)]

    async def send_in_order(mine: list[bytes]) -> None:
        for chunk in range(20):
            await producer.send(RAW_EVENTS, [Message(k, f"{k.decode()}:{chunk}".encode()) for k in mine])

    # Three concurrent senders, each the only writer of its keys: per key, the send order is defined.
    await asyncio.gather(*(send_in_order(keys[i::3]) for i in range(3)))
    consumer = bus_platform.bus.consumer("g1", [RAW_EVENTS])
    records = await drain(consumer, 240)
    await consumer.close()
    assert len(records) == 240
    seen: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for record in records:
        seen.setdefault(record.key, []).append(int(record.value.decode().split(":")[1]))
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(v == list(range(20)) for v in seen.values()), "a key's messages arrived out of order"
    assert all(len(p) == 1 for p in partitions.values()), "one key landed in two partitions"
    assert len({p for ps in partitions.values() for p in ps}) > 1, "every key in one partition proves little"


async def test_uncommitted_records_are_delivered_again_after_a_crash(bus_platform: Platform) -> None:
    producer = bus_platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), str(i).encode()) for i in range(50)])
    first = bus_platform.bus.consumer("g2", [RAW_EVENTS])
    batch = await drain(first, 50)
    assert sorted(values(batch)) == list(range(50))
    # Within a partition offsets follow send order, so committing the records of values < 20
    # commits exactly those; then leave without committing the rest.
    await first.commit([r for r in batch if int(r.value) < 20])
    await first.close()
    second = bus_platform.bus.consumer("g2", [RAW_EVENTS])
    again = await drain(second, 30)
    assert await second.poll(1000, 0.3) == []  # and nothing more: the committed ones are not repeated
    await second.close()
    assert sorted(values(again)) == list(range(20, 50))


async def test_a_commit_only_moves_the_position_forward(bus_platform: Platform) -> None:
    producer = bus_platform.bus.producer()
    await producer.send(RAW_EVENTS, [Message(b"one-key", str(i).encode()) for i in range(10)])
    first = bus_platform.bus.consumer("g3", [RAW_EVENTS])
    records = sorted(await drain(first, 10), key=lambda r: r.offset)
    await first.commit(records[:6])
    await first.commit(records[:2])  # a late, older commit must not move the group back
    await first.close()
    second = bus_platform.bus.consumer("g3", [RAW_EVENTS])
    rest = await drain(second, 4)
    assert await second.poll(1000, 0.3) == []
    await second.close()
    assert values(rest) == [6, 7, 8, 9]


async def test_members_of_a_group_own_disjoint_partitions_and_take_over_from_a_crashed_one(
    bus_platform: Platform, bus_settings: Settings,
) -> None:
    bus = bus_platform.bus
    producer = bus.producer()
    partitions = topic_partitions(bus_settings)[RAW_EVENTS]
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), str(i).encode()) for i in range(40)])

    # Another group reads everything, whatever group ga does.
    other = bus.consumer("gb", [RAW_EVENTS])
    assert sorted(values(await drain(other, 40))) == list(range(40))
    await other.close()

    a, a2 = bus.consumer("ga", [RAW_EVENTS]), bus.consumer("ga", [RAW_EVENTS])
    members: list[Consumer] = [a, a2]
    committed: set[int] = set()

    def settled() -> bool:
        owned = [set(m.assignment) for m in members]
        return len(committed) == 40 and not (owned[0] & owned[1]) and len(owned[0] | owned[1]) == partitions

    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not settled():
        assert asyncio.get_running_loop().time() < deadline, (
            f"group ga never settled: committed {len(committed)}, owned {[m.assignment for m in members]}"
        )
        for member in members:
            batch = await member.poll(1000, 0.1)
            assert not set(member.assignment) & set((a2 if member is a else a).assignment), "a shared partition"
            if batch:
                await member.commit(batch)
                committed.update(values(batch))

    # New records: both members read them without committing; then a leaves as if it had crashed.
    fresh = set(range(100, 140))
    await producer.send(RAW_EVENTS, [Message(f"k{i}".encode(), str(100 + i).encode()) for i in range(40)])
    read_by = await poll_until(
        members, lambda seen: {*values(seen[0]), *values(seen[1])} == fresh, "the new records"
    )
    in_hand = set(values(read_by[0]))
    assert in_hand, "member a owned no partition, so its crash proves nothing"
    assert not in_hand & set(values(read_by[1])), "two live members were handed the same records"
    await a.close()
    # a2 takes a's partitions over from the last committed positions: it gets all a had in hand.
    await poll_until([a2], lambda seen: in_hand <= set(values(seen[0])), "a2 to take over a's partitions")
    assert len(a2.assignment) == partitions
    await a2.close()


async def test_lag_follows_committed_positions(bus_platform: Platform) -> None:
    await bus_platform.bus.producer().send(RAW_EVENTS, [Message(f"k{i}".encode(), b"x") for i in range(30)])
    consumer = bus_platform.bus.consumer("gl", [RAW_EVENTS])
    records = await drain(consumer, 30)
    assert len(records) == 30
    held_back = records[0].partition
    behind = [r for r in records if r.partition == held_back]
    assert len(behind) > 1
    # Every partition fully committed but one, which is committed past its first record only.
    await consumer.commit([r for r in records if r.partition != held_back] + behind[:1])
    lags = {lag.partition: lag for lag in await bus_platform.bus.lag() if lag.group_id == "gl"}
    assert lags[held_back].lag == len(behind) - 1
    assert lags[held_back].committed == behind[0].offset + 1
    assert sum(lag.lag for p, lag in lags.items() if p != held_back) == 0
    await consumer.commit(records)
    lags = {lag.partition: lag for lag in await bus_platform.bus.lag() if lag.group_id == "gl"}
    await consumer.close()
    assert {lag.topic for lag in lags.values()} == {RAW_EVENTS}
    assert set(lags) >= {r.partition for r in records}
    assert sum(lag.end for lag in lags.values()) == 30
    assert sum(lag.lag for lag in lags.values()) == 0


async def test_the_processor_routes_bad_events_to_the_dlq_with_a_reason(
    bus_platform: Platform, bus_settings: Settings, spans: Spans,
) -> None:
    store = TenancyStore(bus_platform.pool)
    tenant = await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}")
    game = await store.create_game(tenant, "game")
    event_id = uuid.uuid4()
    good = {"event_id": str(event_id), "event_type": "session_start", "player_id": "p1",
            "timestamp": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()}
    envelope = RawEnvelope(tenant, game, datetime.now(UTC), msgspec.Raw(json.dumps(good).encode()))
    await bus_platform.bus.producer().send(RAW_EVENTS, [
        Message(partition_key(tenant, "p1"), msgspec.json.encode(envelope), {"traceparent": TRACE}),
        Message(partition_key(tenant, "p2"), b"{not an envelope", {"traceparent": TRACE}),
    ])
    processor = Processor(
        bus_platform.bus, EventSink(bus_platform.pool, session_gap=timedelta(minutes=30)),
        limits=Limits.from_settings(bus_settings), rates=bus_settings.processor.fx_rates_usd, batch_size=100,
        poll_timeout=0.2,
    )
    handled = 0
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while handled < 2:
        assert asyncio.get_running_loop().time() < deadline, f"the processor handled {handled} of 2 records"
        result = await processor.process_once()
        if result is not None:
            handled += result.stored + result.dead_lettered
    processor.stop()
    await processor.run()  # returns at once: stopped; leaves the group

    reader = bus_platform.bus.consumer("reader", [PROCESSED_EVENTS, EVENTS_DLQ])
    records = await drain(reader, 2)
    await reader.close()
    by_topic = {r.topic: r for r in records}
    assert sorted(by_topic) == [EVENTS_DLQ, PROCESSED_EVENTS] and len(records) == 2
    processed = json.loads(by_topic[PROCESSED_EVENTS].value)
    assert processed["event_id"] == str(event_id) and processed["tenant_id"] == str(tenant)
    assert by_topic[PROCESSED_EVENTS].headers.get("schema_version") == "1"
    trace, span = TRACE.split("-")[1:3]
    assert by_topic[PROCESSED_EVENTS].headers["traceparent"].split("-")[1] == trace  # consumers join the sender's trace
    assert by_topic[PROCESSED_EVENTS].headers["traceparent"].split("-")[2] != span
    letter = by_topic[EVENTS_DLQ]
    assert letter.value == b"{not an envelope"  # the original bytes, to replay once fixed
    assert "unreadable raw envelope" in letter.headers["error.reason"]
    assert letter.headers["source.topic"] == RAW_EVENTS
    assert letter.headers["traceparent"].split("-")[1] == trace  # the letter stays in the sender's trace
    assert letter.headers["traceparent"].split("-")[2] != span
