"""Processed events stay in the trace of the request that sent them (W3C `traceparent` header)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.ports.bus import PROCESSED_EVENTS, RAW_EVENTS, Message, Record
from gamemetrics.runtime import Platform
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_a_processed_event_carries_a_child_span_of_its_raw_records_trace(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    encoder = msgspec.json.Encoder()
    now = datetime.now(UTC)
    messages = []
    for player, headers in (("traced", {"traceparent": SENDER, "schema_version": "1"}),
                            ("untraced", {"schema_version": "1"})):
        event = {"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": player,
                 "timestamp": (now - timedelta(seconds=5)).isoformat()}
        envelope = RawEnvelope(write_key.tenant_id, write_key.game_id, now, msgspec.Raw(encoder.encode(event)))
        messages.append(Message(partition_key(write_key.tenant_id, player), encoder.encode(envelope), headers))
    await platform.bus.producer().send(RAW_EVENTS, messages)

    processor = Processor(
        platform.bus, EventSink(platform.pool, session_gap=timedelta(minutes=30)),
        limits=Limits.from_settings(settings), rates=settings.fx_rates_usd, batch_size=1000, poll_timeout=0.2,
    )
    stored = 0
    for _ in range(20):
        result = await processor.process_once()
        stored += result.stored if result is not None else 0
        if stored == 2:
            break
    assert stored == 2

    reader = platform.bus.consumer("trace-reader", [PROCESSED_EVENTS])
    records: list[Record] = []
    for _ in range(20):
        records += await reader.poll(100, 0.2)
        if len(records) >= 2:
            break
    await reader.close()
    by_player = {msgspec.json.decode(r.value)["player_id"]: r.headers for r in records}
    assert sorted(by_player) == ["traced", "untraced"]

    traced = by_player["traced"]
    assert traced["schema_version"] == "1"
    version, trace_id, span_id, flags = traced["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != SENDER.split("-")[2] and len(span_id) == 16  # a span of its own, not the sender's
    # No trace came in, so none is made up: a consumer starts its own.
    assert by_player["untraced"] == {"schema_version": "1"}
