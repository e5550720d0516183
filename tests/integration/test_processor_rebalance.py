"""A second processor joining mid-stream takes half the partitions while the first still holds
batches it read but has not committed: every event is stored once, and the counters agree."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gamemetrics.adapters.pglog import consumer
from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import Platform
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message
from tests.integration.test_bus_contract import PATIENCE_S

EVENTS = 20_000


def _processor(platform: Platform, settings: Settings) -> Processor:
    # Small batches, so the first processor is mid-stream, with a batch read ahead, when the second joins.
    return make_processor(platform, settings, batch_size=200, poll_timeout=0.1)


async def _stored(platform: Platform) -> tuple[int, int, int]:
    async with platform.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events")
        rows, distinct = await cur.fetchone() or (0, 0)
        cur = await conn.execute("SELECT coalesce(sum(events_stored), 0) FROM game_counters")
        (counted,) = await cur.fetchone() or (0,)
    return int(rows), int(distinct), int(counted)


async def test_a_processor_joining_mid_stream_changes_nothing_of_what_is_stored(
    platform: Platform, settings: Settings, write_key: CreatedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "_CLAIM_INTERVAL_S", 0.2)  # rebalance within the stream, not after it
    now = datetime.now(UTC)
    messages = [
        raw_message(write_key, {"event_id": str(uuid.uuid4()), "event_type": "level_start", "player_id": f"p{i % 500}",
                                "timestamp": (now - timedelta(seconds=EVENTS - i)).isoformat(),
                                "properties": {"level": i % 9}})
        for i in range(EVENTS)
    ]
    await platform.bus.producer().send(RAW_EVENTS, messages)

    first, second = _processor(platform, settings), _processor(platform, settings)
    running = [asyncio.create_task(first.run())]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE_S
    while (await _stored(platform))[0] < EVENTS // 10:
        assert loop.time() < deadline, "the first processor stored nothing"
        await asyncio.sleep(0.05)
    running.append(asyncio.create_task(second.run()))
    shared = False  # whether both held partitions at once, while events were still arriving
    while (stored := await _stored(platform))[2] < EVENTS or sum(
            lag.lag for lag in await platform.bus.lag() if lag.group_id == "processor"):
        assert loop.time() < deadline, f"not drained: {stored}"
        assert not any(task.done() for task in running), "a processor stopped"
        shared = shared or (stored[2] < EVENTS and all(p.assignment for p in (first, second)))
        await asyncio.sleep(0.02)
    assert shared, "the second processor never took partitions mid-stream"
    first.stop()
    second.stop()
    await asyncio.gather(*running)
    assert await _stored(platform) == (EVENTS, EVENTS, EVENTS)
