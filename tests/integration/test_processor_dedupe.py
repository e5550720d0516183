"""A batch that repeats stored event ids stores only its new events, whether it is all new, all
old, or mixed (the fast all-new path falls back to a per-id claim)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message


def _messages(key: CreatedKey, event_ids: list[str]) -> list[Message]:
    now = datetime.now(UTC)
    return [
        raw_message(key, {"event_id": event_id, "event_type": "level_start", "player_id": f"p{i % 3}",
                          "timestamp": (now - timedelta(seconds=30 - i)).isoformat(), "properties": {"level": i}})
        for i, event_id in enumerate(event_ids)
    ]


async def test_replayed_and_mixed_batches_store_only_new_events(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    processor = make_processor(platform, settings)
    first = [str(uuid.uuid4()) for _ in range(6)]
    later = [str(uuid.uuid4()) for _ in range(2)]

    async def process(event_ids: list[str]) -> tuple[int, int]:
        await platform.bus.producer().send(RAW_EVENTS, _messages(write_key, event_ids))
        stored = duplicates = 0
        while (result := await processor.process_once()) is not None:
            stored, duplicates = stored + result.stored, duplicates + result.duplicates
        return stored, duplicates

    assert await process(first) == (6, 0)
    assert await process(first) == (0, 6)  # a replay of the whole batch
    assert await process([*first[:3], *later]) == (2, 3)  # old and new together
    async with platform.pool.connection() as conn:
        rows = await (await conn.execute("SELECT event_id::text FROM events")).fetchall()
        counters = await (await conn.execute("SELECT events_stored FROM game_counters")).fetchone()
    assert sorted(e for (e,) in rows) == sorted([*first, *later])
    assert counters == (8,)
