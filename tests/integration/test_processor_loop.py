"""The processor's loop runs its after-batch hook (the service's garbage collection) once per
round, when the batch just stored is no longer referenced by the loop."""

from __future__ import annotations

import asyncio
import gc
import uuid
from datetime import UTC, datetime, timedelta

from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import Platform
from gamemetrics.services.processor.worker import Batch
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message
from tests.integration.test_bus_contract import PATIENCE_S

EVENTS = 600


async def test_the_after_batch_hook_runs_each_round_with_the_stored_batch_released(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    now = datetime.now(UTC)
    await platform.bus.producer().send(RAW_EVENTS, [
        raw_message(write_key, {"event_id": str(uuid.uuid4()), "event_type": "level_start", "player_id": f"p{i % 50}",
                                "timestamp": (now - timedelta(seconds=EVENTS - i)).isoformat(),
                                "properties": {"level": 1}})
        for i in range(EVENTS)
    ])
    batches_alive: list[int] = []

    def after_batch() -> None:
        # At most the batch read ahead is alive; the one stored before the hook must be gone.
        batches_alive.append(sum(isinstance(o, Batch) for o in gc.get_objects()))

    processor = make_processor(platform, settings, batch_size=100, poll_timeout=0.05, after_batch=after_batch)
    running = asyncio.create_task(processor.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE_S
    while True:
        async with platform.pool.connection() as conn:
            (stored,) = await (await conn.execute("SELECT count(*) FROM events")).fetchone() or (0,)
        if stored == EVENTS:
            break
        assert loop.time() < deadline, f"stored {stored} of {EVENTS}"
        await asyncio.sleep(0.05)
    processor.stop()
    await running
    assert len(batches_alive) >= EVENTS // 100, batches_alive
    assert max(batches_alive) <= 1, batches_alive
