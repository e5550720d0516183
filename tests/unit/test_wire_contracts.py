"""The wire contracts of events/ with plain data: a processed event and a dead letter as their
consumers read them back, and the stores an erasure waits for given the platform's erasers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gamemetrics.events.dead_letters import (
    REASON,
    SOURCE_OFFSET,
    UnreadableDeadLetter,
    dead_letter,
    read_dead_letter,
)
from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.events.processed import UnreadableProcessedEvent, read_processed
from gamemetrics.gdpr.erasers import StoreState, expected_stores, group_of
from gamemetrics.observability import tracing
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Message, Record
from gamemetrics.services.processor.decode import DeadLetter, EventRow
from gamemetrics.services.processor.publish import dead_letter_message, processed_messages
from tests.tracing import Spans

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _as_read(topic: str, message: Message, offset: int = 7) -> Record:
    return Record(topic, 3, offset, message.key, message.value, message.headers)


def _row(record: Record) -> EventRow:
    now = datetime.now(UTC)
    return EventRow(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "purchase", None, "p1", "s1", now, now, "sdk", "ios",
                    None, "1.2", "DE", Decimal("4.99"), b'{"price":4.99}', b"{}", True, record=record)


def _in_a_batch(record: Record) -> tracing.BatchSpans:
    spans = tracing.batch_spans([record], group="processor", topics=[RAW_EVENTS])
    assert spans is not None, "tracing is on in these tests"
    return spans


def test_a_processed_event_reads_back_as_published_in_the_senders_trace(spans: Spans) -> None:
    raw = Record(RAW_EVENTS, 1, 40, b"k", b"{}", {"traceparent": TRACE})
    row = _row(raw)
    with _in_a_batch(raw).handling():
        (message,) = processed_messages([row], {})
    event = read_processed(_as_read(PROCESSED_EVENTS, message))
    assert (event.event_id, event.player_id, event.revenue_usd, event.is_new_player) == (
        row.event_id, "p1", Decimal("4.99"), True)
    assert bytes(event.properties) == b'{"price":4.99}' and event.country == "DE" and event.os is None
    assert message.headers["schema_version"] == "1" and message.headers["traceparent"].split("-")[1] == TRACE[3:35]


def test_a_processed_event_of_another_schema_version_is_refused_with_its_position() -> None:
    (message,) = processed_messages([_row(Record(RAW_EVENTS, 0, 0, b"k", b"{}", {}))], {})
    with pytest.raises(UnreadableProcessedEvent, match=r"player.events.processed\[3\]@7.*'2'"):
        read_processed(Record(PROCESSED_EVENTS, 3, 7, message.key, message.value, {"schema_version": "2"}))
    with pytest.raises(UnreadableProcessedEvent, match=r"@9"):
        read_processed(Record(PROCESSED_EVENTS, 3, 9, message.key, b"{}", message.headers))


def test_a_dead_letter_reads_back_with_its_reason_source_tenant_and_trace(spans: Spans) -> None:
    tenant = uuid.uuid4()
    source = Record(RAW_EVENTS, 2, 1234, b"k", b"{not an envelope", {"traceparent": TRACE})
    with _in_a_batch(source).handling():
        message = dead_letter_message(DeadLetter(source, "unreadable raw envelope", tenant))
    letter = read_dead_letter(_as_read(EVENTS_DLQ, message, 88))
    assert letter.reason == "unreadable raw envelope" and letter.tenant_id == tenant
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (RAW_EVENTS, 2, 1234)
    assert (letter.position.topic, letter.position.offset) == (EVENTS_DLQ, 88)
    assert letter.value == b"{not an envelope"  # the original bytes, to replay once fixed
    assert letter.traceparent is not None and letter.traceparent.split("-")[1] == TRACE.split("-")[1]
    assert letter.traceparent != TRACE
    # Untraced, the letter carries no trace header at all.
    untraced = read_dead_letter(_as_read(EVENTS_DLQ, dead_letter_message(DeadLetter(source, "why", tenant))))
    assert untraced.traceparent is None


def test_a_dead_letter_of_an_unknown_tenant_and_records_that_are_no_dead_letters() -> None:
    source = Record(RAW_EVENTS, 0, 5, b"k", b"x", {})
    letter = read_dead_letter(_as_read(EVENTS_DLQ, dead_letter(source, "why", None, b"x")))
    assert letter.tenant_id is None and letter.traceparent is None
    with pytest.raises(UnreadableDeadLetter, match=r"player.events.dlq\[3\]@7.*error.reason"):
        read_dead_letter(Record(EVENTS_DLQ, 3, 7, b"", b"x", {}))
    broken = dict(dead_letter(source, "why", None, b"x").headers, **{SOURCE_OFFSET: "five"})
    with pytest.raises(UnreadableDeadLetter, match="not a number"):
        read_dead_letter(Record(EVENTS_DLQ, 3, 7, b"", b"x", broken))
    with pytest.raises(UnreadableDeadLetter, match="3 bytes"):
        read_dead_letter(Record(EVENTS_DLQ, 3, 7, b"abc", b"x", {**broken, SOURCE_OFFSET: "5", REASON: "r"}))


@dataclass
class _Eraser:
    name: str
    stores: Sequence[str]

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        return dict.fromkeys(self.stores, StoreState("erased", rows=0))


def test_an_erasure_waits_for_every_store_of_every_eraser_each_in_its_own_group() -> None:
    erasers = [_Eraser("erasure", ("events", "bus")), _Eraser("vectors", ("item_vectors", "player_vectors"))]
    assert expected_stores(erasers) == ("events", "bus", "item_vectors", "player_vectors")
    assert [group_of(e) for e in erasers] == ["gdpr-erasure", "gdpr-vectors"]
    with pytest.raises(ValueError, match="'bus' is confirmed by both 'erasure' and 'archives'"):
        expected_stores([*erasers, _Eraser("archives", ("bus",))])
    with pytest.raises(ValueError, match="share a consumer group"):
        expected_stores([*erasers, _Eraser("vectors", ("other",))])
