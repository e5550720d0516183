"""kcat, an outside Kafka client, talks to the platform's topics: what it produces into
`player.events.raw` is processed and stored, and it reads the processed events back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import pytest_asyncio

from gamemetrics.adapters.kafka.local import LocalBroker
from gamemetrics.events.envelope import RawEnvelope
from gamemetrics.events.validation import Limits
from gamemetrics.ports.bus import PROCESSED_EVENTS, RAW_EVENTS
from gamemetrics.runtime import Platform, connect, topic_partitions
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from tests.kafka_broker import kafka_settings, kcat

pytestmark = pytest.mark.timeout(120)
PATIENCE_S = 30.0


@pytest.fixture
def on_kafka(settings: Settings, kafka_broker: LocalBroker) -> Settings:
    return kafka_settings(settings, kafka_broker)


@pytest_asyncio.fixture
async def platform_on_kafka(on_kafka: Settings, database_url: str) -> AsyncIterator[Platform]:
    async with connect(on_kafka, database_url, name="kcat-test") as platform:
        await platform.bus.create_topics(topic_partitions(on_kafka))
        yield platform


async def test_events_produced_by_kcat_are_stored_and_processed_events_read_back_with_kcat(
    platform_on_kafka: Platform, on_kafka: Settings
) -> None:
    store = TenancyStore(platform_on_kafka.pool)
    tenant = await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}")
    game = await store.create_game(tenant, "game")
    now = datetime.now(UTC)
    events = [
        {"event_id": str(uuid.uuid4()), "event_type": "level_complete", "player_id": f"kcat-{i % 5}",
         "timestamp": (now - timedelta(seconds=60 - i)).isoformat(), "properties": {"level": i}}
        for i in range(20)
    ]
    lines = []
    for event in events:
        envelope = RawEnvelope(tenant, game, now, msgspec.Raw(json.dumps(event).encode()))
        lines.append(f"{tenant}:{event['player_id']}\t{msgspec.json.encode(envelope).decode()}")
    produced = subprocess.run(
        [kcat(), "-P", "-b", str(on_kafka.kafka.bootstrap), "-t", on_kafka.kafka.topic_prefix + RAW_EVENTS,
         "-K", "\t", "-H", "schema_version=1", "-X", "acks=all"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30,
    )
    assert produced.returncode == 0, produced.stderr

    processor = Processor(
        platform_on_kafka.bus, EventSink(platform_on_kafka.pool, session_gap=timedelta(minutes=30)),
        limits=Limits.from_settings(on_kafka), rates=on_kafka.processor.fx_rates_usd, batch_size=100, poll_timeout=0.2,
    )
    stored = 0
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while stored < len(events):
        assert asyncio.get_running_loop().time() < deadline, f"only {stored} of {len(events)} kcat events stored"
        result = await processor.process_once()
        if result is not None:
            assert result.dead_lettered == 0
            stored += result.stored
    processor.stop()
    await processor.run()

    async with platform_on_kafka.pool.connection() as conn:
        cur = await conn.execute("SELECT event_id::text, player_id FROM events WHERE tenant_id = %s", (tenant,))
        rows = dict(await cur.fetchall())
    assert rows == {e["event_id"]: e["player_id"] for e in events}

    consumed = subprocess.run(
        [kcat(), "-C", "-b", str(on_kafka.kafka.bootstrap), "-t", on_kafka.kafka.topic_prefix + PROCESSED_EVENTS,
         "-o", "beginning", "-e", "-q", "-J"],
        capture_output=True, text=True, errors="replace", timeout=30,  # keys are binary: tenant uuid + player
    )
    assert consumed.returncode == 0, consumed.stderr
    messages = [json.loads(line) for line in consumed.stdout.splitlines() if line.strip()]
    bodies = [json.loads(m["payload"]) for m in messages]
    assert sorted(b["event_id"] for b in bodies) == sorted(e["event_id"] for e in events)
    assert all(b["tenant_id"] == str(tenant) and b["game_id"] == str(game) for b in bodies)
    assert all(m["headers"][m["headers"].index("schema_version") + 1] == "1" for m in messages)
    partitions: dict[str, set[int]] = {}
    for message, body in zip(messages, bodies, strict=True):
        partitions.setdefault(body["player_id"], set()).add(message["partition"])
    assert all(len(p) == 1 for p in partitions.values()), "one player's processed events span partitions"
