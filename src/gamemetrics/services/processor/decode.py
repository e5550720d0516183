"""Records → rows to store or dead letters with reasons (pure: no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec

from gamemetrics.events.enrich import normalise_country, normalise_os, normalise_platform, revenue_usd
from gamemetrics.events.envelope import RawEnvelope
from gamemetrics.events.schema import Event
from gamemetrics.events.validation import InvalidEvent, Limits, context_of, decode_event
from gamemetrics.ports.bus import Record

_envelope_decoder = msgspec.json.Decoder(RawEnvelope)


class EventRow(msgspec.Struct, gc=False):
    """An event ready for the `events` table; session and new-player fields are filled by stitching.

    Never tracked by the garbage collector (it holds no container that could lead back to it): a
    batch holds tens of thousands, and each of the processor's collections between batches walks
    every tracked object still alive, the batch read ahead included. A msgspec Struct is also made
    in C.
    """

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    event_name: str | None
    player_id: str
    session_id: str | None
    event_time: datetime
    received_at: datetime
    source: str
    platform: str | None
    os: str | None
    app_version: str | None
    country: str | None
    revenue_usd: Decimal | None
    properties: bytes
    context: bytes
    is_new_player: bool = False
    # On a player's latest event of the batch only: their (platform, os, country, app_version) as of
    # it, each from the latest event that carried one (stitching sets it).
    profile: tuple[str | None, str | None, str | None, str | None] | None = None
    record: Record | None = None  # where it was read, to dead-letter it if the store refuses it


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be stored, and why."""

    record: Record
    reason: str
    tenant_id: uuid.UUID | None = None
    game_id: uuid.UUID | None = None
    event_id: str | None = None
    payload: bytes | None = None  # what to keep instead of the record's bytes (an erased player's are not kept)

    @property
    def value(self) -> bytes:
        """The bytes the dead letter keeps."""
        return self.record.value if self.payload is None else self.payload


def decode_records(
    records: Sequence[Record], *, limits: Limits, rates: Mapping[str, Decimal]
) -> tuple[list[EventRow], list[DeadLetter]]:
    """Validate and enrich every record; each one becomes a row or a dead letter, never both."""
    rows: list[EventRow] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            envelope = _envelope_decoder.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as exc:
            dead.append(DeadLetter(record, _text(f"unreadable raw envelope: {exc}")))
            continue
        try:
            event = decode_event(
                envelope.event, limits=limits, now=envelope.received_at, allow_history=envelope.source == "import"
            )
            row = to_row(envelope, event, rates)
            row.record = record
            rows.append(row)
        except InvalidEvent as exc:
            dead.append(DeadLetter(record, _text(str(exc)), envelope.tenant_id, envelope.game_id,
                                   _event_id(envelope)))
    return rows, dead


def to_row(envelope: RawEnvelope, event: Event, rates: Mapping[str, Decimal]) -> EventRow:
    """Enrich one valid event."""
    context = context_of(event)  # checked by decode_event already
    # Positional: keyword arguments cost a name lookup each, on a call made once per event.
    return EventRow(
        envelope.tenant_id, envelope.game_id, event.event_id, event.event_type, event.name, event.player_id,
        event.session_id, event.timestamp, envelope.received_at, envelope.source,
        normalise_platform(context.platform), normalise_os(context.os), context.app_version,
        normalise_country(context.country), revenue_usd(event, rates), bytes(event.properties), bytes(event.context),
    )


def _event_id(envelope: RawEnvelope) -> str | None:
    try:
        value = msgspec.json.decode(envelope.event)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return _text(str(event_id)[:64]) if event_id is not None else None


def _text(value: str) -> str:
    """A dead letter must be storable whatever it carries: PostgreSQL text and jsonb refuse NUL."""
    return value.replace("\x00", "\N{REPLACEMENT CHARACTER}")
