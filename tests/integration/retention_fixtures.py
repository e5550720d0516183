"""History for the retention tests: events of past days stored through the real processor, and the
analytics answers for those days."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.ports.bus import RAW_EVENTS, Message
from gamemetrics.runtime import Platform
from gamemetrics.services.analytics import queries
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor

_json = msgspec.json.Encoder()


def history(days_ago: list[int], players: int = 6, per_player: int = 5) -> list[dict[str, Any]]:
    """Events of `players` players on each of the days `days_ago`: starts, purchases, odd properties."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[dict[str, Any]] = []
    for ago in days_ago:
        base = today - timedelta(days=ago) + timedelta(hours=10)
        for p in range(players):
            for i in range(per_player):
                event: dict[str, Any] = {
                    "event_id": str(uuid.uuid4()), "event_type": "level_start", "player_id": f"player-{p}",
                    "timestamp": (base + timedelta(minutes=p * 7 + i)).isoformat(),
                    "properties": {"level": i, "name": f'lvl "{i}",\nnew line', "empty": ""},
                    "context": {"platform": "ios" if p % 2 else "android", "country": "DE"},
                }
                if i == per_player - 1 and p % 3 == 0:
                    event.update(event_type="purchase",
                                 properties={"item_id": "gems", "price": 4.99, "currency": "USD"})
                events.append(event)
    return events


def import_message(key: CreatedKey, event: dict[str, Any]) -> Message:
    envelope = RawEnvelope(key.tenant_id, key.game_id, datetime.now(UTC), msgspec.Raw(_json.encode(event)),
                           source="import")
    return Message(partition_key(key.tenant_id, event["player_id"]), _json.encode(envelope), {})


async def store_history(platform: Platform, settings: Settings, key: CreatedKey, events: list[dict[str, Any]]) -> None:
    """Send `events` as an import and run the processor until every one is stored."""
    await platform.bus.producer().send(RAW_EVENTS, [import_message(key, e) for e in events])
    processor = make_processor(platform, settings, batch_size=5000, poll_timeout=0.05)
    running = asyncio.create_task(processor.run())
    deadline = asyncio.get_running_loop().time() + 60
    want = {uuid.UUID(e["event_id"]) for e in events}
    while True:
        async with platform.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM event_ids WHERE event_id = ANY(%s)", (list(want),))
            (stored,) = await cur.fetchone() or (0,)
        if stored == len(want):
            break
        assert asyncio.get_running_loop().time() < deadline, f"stored {stored} of {len(want)}"
        await asyncio.sleep(0.05)
    processor.stop()
    await running


async def answers(platform: Platform, key: CreatedKey, days: list[date]) -> dict[str, Any]:
    """DAU, new players, revenue and retention of `days` as the analytics API computes them."""
    days = sorted(days)
    span = [days[0] + timedelta(days=n) for n in range((days[-1] - days[0]).days + 1)]
    async with platform.pool.connection() as conn:
        t, g = key.tenant_id, key.game_id
        return {
            "dau": await queries.daily_active(conn, t, g, span),
            "new": await queries.new_players(conn, t, g, span),
            "revenue": repr(await queries.revenue(conn, t, g, span)),
            "retention": repr(await queries.retention(conn, t, g, span, [1, 7], datetime.now(UTC).date())),
        }


def day_of(ago: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=ago)
