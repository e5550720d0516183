"""Processed events stay in the trace of the request that sent them (W3C `traceparent` header):
the processor's batch has one span per request in it, a child of that request's span."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from gamemetrics.ports.bus import PROCESSED_EVENTS, RAW_EVENTS, Record
from gamemetrics.runtime import Platform
from gamemetrics.services.processor import worker
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.processing import make_processor, raw_message
from tests.tracing import Spans

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER = f"00-{TRACE_ID}-b7ad6b7169203331-01"
OTHER_SENDER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_processed_event_carries_a_child_span_of_its_raw_records_trace(
    platform: Platform, settings: Settings, write_key: CreatedKey, monkeypatch: pytest.MonkeyPatch, spans: Spans,
) -> None:
    # Published two at a time: the batch's messages go out in slices, and every slice arrives.
    monkeypatch.setattr(worker, "PUBLISH_SLICE", 2)
    now = datetime.now(UTC)
    messages = [
        raw_message(write_key, {"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": player,
                                "timestamp": (now - timedelta(seconds=5)).isoformat()}, headers)
        for player, headers in (("traced", {"traceparent": SENDER, "schema_version": "1"}),
                                ("same-request", {"traceparent": SENDER, "schema_version": "1"}),
                                ("other-request", {"traceparent": OTHER_SENDER, "schema_version": "1"}),
                                ("untraced", {"schema_version": "1"}))
    ]
    await platform.bus.producer().send(RAW_EVENTS, messages)

    processor = make_processor(platform, settings)
    stored = 0
    for _ in range(20):
        result = await processor.process_once()
        stored += result.stored if result is not None else 0
        if stored == len(messages):
            break
    assert stored == len(messages)

    reader = platform.bus.consumer("trace-reader", [PROCESSED_EVENTS])
    records: list[Record] = []
    for _ in range(20):
        records += await reader.poll(100, 0.2)
        if len(records) >= len(messages):
            break
    await reader.close()
    by_player = {msgspec.json.decode(r.value)["player_id"]: r.headers for r in records}
    assert sorted(by_player) == ["other-request", "same-request", "traced", "untraced"]

    traced = by_player["traced"]
    assert traced["schema_version"] == "1"
    version, trace_id, span_id, flags = traced["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != SENDER.split("-")[2] and len(span_id) == 16  # a span of its own, not the sender's
    # The events of one request stored by one batch are one processor span; another request's are another.
    assert by_player["same-request"]["traceparent"] == traced["traceparent"]
    other = by_player["other-request"]["traceparent"].split("-")
    assert other[1] == OTHER_SENDER.split("-")[1] and other[2] not in (span_id, OTHER_SENDER.split("-")[2])
    # No trace came in: the batch's records without one share a span of a new trace.
    untraced = by_player["untraced"]["traceparent"].split("-")
    assert untraced[1] not in (TRACE_ID, other[1])

    processing = [s for s in spans.finished() if s.name == f"process {RAW_EVENTS}"]
    mine = [s for s in processing if f"{s.context.trace_id:032x}" == TRACE_ID]
    assert len(mine) == 1 and f"{mine[0].context.span_id:016x}" == span_id
    assert mine[0].parent is not None and f"{mine[0].parent.span_id:016x}" == SENDER.split("-")[2]
    assert mine[0].attributes is not None and mine[0].attributes["gamemetrics.events.stored"] == 4
    assert mine[0].attributes["messaging.batch.message_count"] == 2
