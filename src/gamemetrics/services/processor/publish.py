"""What the processor publishes, made from plain rows (pure): processed events and dead letters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from gamemetrics.events.dead_letters import dead_letter
from gamemetrics.events.envelope import partition_key
from gamemetrics.events.processed import HEADERS, ProcessedEvent
from gamemetrics.observability import tracing
from gamemetrics.observability.tracing import TRACEPARENT
from gamemetrics.ports.bus import Message
from gamemetrics.services.processor.decode import DeadLetter, EventRow

_json = msgspec.json.Encoder(decimal_format="string")


def processed_messages(rows: Sequence[EventRow], spans: dict[str, Mapping[str, str]]) -> list[Message]:
    """The processed message of each row, keyed like the raw one (tenant + player).

    With tracing on, each carries the span the processor's batch has in its sender's trace
    (`tracing.carrier_after`); `spans` keeps the headers made for each sender's span, so the
    messages of one request share one mapping."""
    traced = tracing.enabled()
    tenant_bytes: dict[int, bytes] = {}  # made once per tenant
    messages: list[Message] = []
    for row in rows:
        tenant = tenant_bytes.get(row.tenant_id.int)
        if tenant is None:
            tenant = tenant_bytes[row.tenant_id.int] = row.tenant_id.bytes
        headers = HEADERS
        if traced and row.record is not None:
            parent = row.record.headers.get(TRACEPARENT, "")
            joined = spans.get(parent)
            if joined is None:
                carrier = tracing.carrier_after(row.record.headers)
                joined = spans[parent] = {**HEADERS, **carrier} if carrier else HEADERS
            headers = joined
        messages.append(processed_message(row, partition_key(row.tenant_id, row.player_id, tenant_bytes=tenant),
                                          headers))
    return messages


def processed_message(row: EventRow, key: bytes, headers: Mapping[str, str]) -> Message:
    """The processed message of `row`, under `key` (its partition key)."""
    body = ProcessedEvent(
        row.tenant_id, row.game_id, row.event_id, row.event_type, row.player_id, row.event_time,
        row.received_at, row.source, row.is_new_player, msgspec.Raw(row.properties), msgspec.Raw(row.context),
        row.event_name, row.session_id, row.platform, row.os, row.app_version, row.country, row.revenue_usd,
    )
    return Message(key, _json.encode(body), headers)


def dead_letter_message(letter: DeadLetter) -> Message:
    """The `player.events.dlq` message of `letter`: the bytes it keeps, the why in the headers."""
    return dead_letter(letter.record, letter.reason, letter.tenant_id, letter.value)
