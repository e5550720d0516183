"""The shared consumer loop on both buses (the embedded log and a real Kafka broker): a sink that
fails twice loses nothing and doubles nothing, its failures are counted and logged with their
offsets and traceback, a batch read ahead and discarded is read again, cancellation propagates at
once (during the backoff and while the sink works), and stop() commits the batch in hand."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY

from gamemetrics.consuming.backoff import Backoff
from gamemetrics.consuming.failures import offset_ranges
from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.observability.logging import configure_logging
from gamemetrics.ports.bus import NOTIFICATION_REQUESTS, Message, Record
from gamemetrics.runtime import Platform
from tests.integration.test_bus_contract import PATIENCE_S, drain

pytestmark = pytest.mark.timeout(120)

TOPIC = NOTIFICATION_REQUESTS  # a topic no worker reads yet
RECORDS = 40
# A poll returns as soon as it has a batch; the long wait is for Kafka's fetches after a rejoin,
# so that the batch read ahead is never an empty one.
POLL_S = 1.0


class JsonLogs:
    """The JSON lines the service's own logging configuration wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def lines(self, event_prefix: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self._stream.getvalue().splitlines() if line.startswith("{")]
        return [line for line in parsed if str(line.get("event", "")).startswith(event_prefix)]


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[JsonLogs]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", service="test")
    structlog.configure(cache_logger_on_first_use=False)  # later tests log to their own stream
    yield JsonLogs(stream)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


async def _send(platform: Platform) -> None:
    await platform.bus.producer().send(TOPIC, [Message(f"k{i % 8}".encode(), str(i).encode()) for i in range(RECORDS)])


def _failures(group: str) -> float:
    return REGISTRY.get_sample_value("gamemetrics_consumer_failures_total", {"group": group}) or 0.0


def _group() -> str:
    return f"loop-{uuid.uuid4().hex[:8]}"


async def _until(condition: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_sink_failing_twice_loses_nothing_doubles_nothing_and_is_counted_and_logged(
    bus_platform: Platform, json_logs: JsonLogs
) -> None:
    await _send(bus_platform)
    group = _group()
    accepted: list[int] = []
    prepared: list[list[Record]] = []
    failed_batches: list[list[Record]] = []
    discarded: list[list[Record]] = []
    calls = 0

    def prepare(records: list[Record]) -> list[Record]:
        prepared.append(records)
        return records

    async def sink(batch: list[Record]) -> None:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            await _until(lambda: prepared[-1] is not batch, "the next batch read ahead")
            failed_batches.append(batch)
            discarded.append(prepared[-1])
            raise ConnectionError(f"the store went away (call {calls})")
        accepted.extend(int(r.value) for r in batch)

    loop = ConsumerLoop(bus_platform.bus, group, [TOPIC], prepare=prepare, sink=sink, batch_size=8,
                        poll_timeout=POLL_S, read_ahead=True, backoff=Backoff(0.05, 0.2))
    running = asyncio.create_task(loop.run())
    await _until(lambda: len(accepted) >= RECORDS or running.done(), f"{RECORDS} records accepted")
    loop.stop()
    await asyncio.wait_for(running, PATIENCE_S)

    assert sorted(accepted) == list(range(RECORDS))  # nothing lost, nothing doubled
    times_prepared = Counter(int(r.value) for batch in prepared for r in batch)
    assert all(times_prepared[int(r.value)] >= 2 for batch in discarded for r in batch), "read ahead, not read again"
    assert _failures(group) == 2
    logged = json_logs.lines("batch failed")
    assert len(logged) == 2, logged
    for line, batch, in_a_row in zip(logged, failed_batches, (1, 2), strict=True):
        assert line["level"] == "warning" and line["group"] == group and line["stage"] == "handle"
        assert line["topics"] == [TOPIC] and line["failures_in_a_row"] == in_a_row and line["backoff_s"] > 0
        assert line["offsets"] == [{"topic": r.topic, "partition": r.partition, "first": r.first_offset,
                                    "last": r.last_offset} for r in offset_ranges(batch)]
        assert line["partitions"] == [f"{r.topic}[{r.partition}]" for r in offset_ranges(batch)]
        assert line["reason"].startswith("ConnectionError: the store went away")
        assert line["exception"].startswith("Traceback") and "in sink" in line["exception"]
        assert "ConnectionError: the store went away" in line["exception"]


async def test_cancellation_during_the_backoff_propagates_at_once_and_the_member_leaves(
    bus_platform: Platform
) -> None:
    await _send(bus_platform)
    group = _group()

    async def sink(batch: list[Record]) -> None:
        raise ConnectionError("the store is away")

    loop = ConsumerLoop(bus_platform.bus, group, [TOPIC], prepare=list, sink=sink, batch_size=8,
                        poll_timeout=POLL_S, read_ahead=True, backoff=Backoff(60.0, 60.0))
    running = asyncio.create_task(loop.run())
    await _until(lambda: _failures(group) == 1 or running.done(), "the first failure")
    await asyncio.sleep(0.1)  # inside the minute-long backoff now
    cancelled_at = asyncio.get_running_loop().time()
    running.cancel()
    await asyncio.wait([running], timeout=PATIENCE_S)
    assert running.cancelled(), "the loop swallowed its cancellation"
    assert asyncio.get_running_loop().time() - cancelled_at < 2.0
    # It left the group: a new member takes every partition and reads everything again.
    successor = bus_platform.bus.consumer(group, [TOPIC])
    try:
        assert sorted(int(r.value) for r in await drain(successor, RECORDS)) == list(range(RECORDS))
    finally:
        await successor.close()


async def test_cancellation_while_the_sink_works_and_the_next_batch_is_read_ahead_propagates(
    bus_platform: Platform
) -> None:
    await _send(bus_platform)
    handling = asyncio.Event()
    prepared: list[list[Record]] = []

    def prepare(records: list[Record]) -> list[Record]:
        prepared.append(records)
        return records

    async def sink(batch: list[Record]) -> None:
        handling.set()
        await asyncio.Event().wait()  # a store that never answers

    loop = ConsumerLoop(bus_platform.bus, _group(), [TOPIC], prepare=prepare, sink=sink, batch_size=8,
                        poll_timeout=POLL_S, read_ahead=True)
    running = asyncio.create_task(loop.run())
    await asyncio.wait_for(handling.wait(), PATIENCE_S)
    await _until(lambda: len(prepared) == 2, "the next batch read ahead")
    cancelled_at = asyncio.get_running_loop().time()
    running.cancel()
    await asyncio.wait([running], timeout=PATIENCE_S)
    assert running.cancelled(), "the loop swallowed its cancellation"
    assert asyncio.get_running_loop().time() - cancelled_at < 2.0


async def test_stop_commits_the_batch_in_hand_and_leaves_the_one_read_ahead_to_the_next_member(
    bus_platform: Platform
) -> None:
    await _send(bus_platform)
    group = _group()
    handled: list[list[Record]] = []
    prepared: list[list[Record]] = []
    release = asyncio.Event()

    def prepare(records: list[Record]) -> list[Record]:
        prepared.append(records)
        return records

    async def sink(batch: list[Record]) -> None:
        handled.append(batch)
        await release.wait()

    loop = ConsumerLoop(bus_platform.bus, group, [TOPIC], prepare=prepare, sink=sink, batch_size=8,
                        poll_timeout=POLL_S, read_ahead=True)
    running = asyncio.create_task(loop.run())
    await _until(lambda: len(prepared) == 2 or running.done(), "a batch in hand and one read ahead")
    loop.stop()
    release.set()
    await asyncio.wait_for(running, PATIENCE_S)
    assert len(handled) == 1
    in_hand = {int(r.value) for r in handled[0]}
    read_ahead = {int(r.value) for r in prepared[1]}
    successor = bus_platform.bus.consumer(group, [TOPIC])
    try:
        rest = await drain(successor, RECORDS - len(in_hand))
        assert not await successor.poll(100, 1.0), "records committed by stop() were delivered again"
    finally:
        await successor.close()
    values = [int(r.value) for r in rest]
    assert sorted(values) == sorted(set(range(RECORDS)) - in_hand)  # the batch in hand was committed
    assert read_ahead <= set(values)  # the one read ahead was not
