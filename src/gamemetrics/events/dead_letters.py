"""The dead-letter contract of `player.events.dlq`: the original bytes, and why, in the headers.

Kafka Connect's convention: the value is the refused record's bytes (so it can be replayed once
fixed), the key is the tenant's id (empty when the tenant is unknown), and headers say why and
where the record came from. The dashboard's DLQ browser and replay read letters back with
`read_dead_letter`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gamemetrics.observability.tracing import TRACEPARENT, carrier_after
from gamemetrics.ports.bus import Message, Record

REASON = "error.reason"
SOURCE_TOPIC = "source.topic"
SOURCE_PARTITION = "source.partition"
SOURCE_OFFSET = "source.offset"


def dead_letter(source: Record, reason: str, tenant_id: uuid.UUID | None, value: bytes) -> Message:
    """The dead-letter message for `source`, refused for `reason`, keeping `value` as its bytes."""
    headers = {
        REASON: reason,
        SOURCE_TOPIC: source.topic,
        SOURCE_PARTITION: str(source.partition),
        SOURCE_OFFSET: str(source.offset),
    }
    # With tracing on, the letter carries the span of the batch that refused it, in the sender's trace.
    headers.update(carrier_after(source.headers))
    return Message(tenant_id.bytes if tenant_id else b"", value, headers)


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record sits in its log."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A dead letter as read back from its topic."""

    position: SourcePosition  # of the letter itself, on the dead-letter topic
    source: SourcePosition  # of the refused record
    reason: str
    tenant_id: uuid.UUID | None
    value: bytes
    traceparent: str | None


class UnreadableDeadLetter(ValueError):
    """A record of a dead-letter topic without the headers a dead letter carries."""


def read_dead_letter(record: Record) -> DeadLetterRecord:
    """The dead letter `record` holds; UnreadableDeadLetter names where it sits and what is missing."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    missing = [h for h in (REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET) if h not in record.headers]
    if missing:
        raise UnreadableDeadLetter(f"{where}: not a dead letter, no {', '.join(missing)} header")
    if len(record.key) not in (0, 16):
        raise UnreadableDeadLetter(f"{where}: the key is {len(record.key)} bytes, not a tenant id")
    try:
        source = SourcePosition(record.headers[SOURCE_TOPIC], int(record.headers[SOURCE_PARTITION]),
                                int(record.headers[SOURCE_OFFSET]))
    except ValueError:
        raise UnreadableDeadLetter(f"{where}: the source partition or offset is not a number") from None
    return DeadLetterRecord(
        SourcePosition(record.topic, record.partition, record.offset), source, record.headers[REASON],
        uuid.UUID(bytes=record.key) if record.key else None, record.value, record.headers.get(TRACEPARENT),
    )
