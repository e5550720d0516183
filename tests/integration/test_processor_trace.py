"""Processed events stay in the trace of the request that sent them (W3C `traceparent` header)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from gamemetrics.ports.bus import PROCESSED_EVENTS, RAW_EVENTS, Record
from gamemetrics.runtime import Platform
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_a_processed_event_carries_a_child_span_of_its_raw_records_trace(
    platform: Platform, settings: Settings, write_key: CreatedKey
) -> None:
    now = datetime.now(UTC)
    messages = [
        raw_message(write_key, {"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": player,
                                "timestamp": (now - timedelta(seconds=5)).isoformat()}, headers)
        for player, headers in (("traced", {"traceparent": SENDER, "schema_version": "1"}),
                                ("untraced", {"schema_version": "1"}))
    ]
    await platform.bus.producer().send(RAW_EVENTS, messages)

    processor = make_processor(platform, settings)
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
