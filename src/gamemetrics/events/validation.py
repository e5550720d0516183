"""Full validation of one event: envelope, type, per-type properties, size, depth and time limits.

Ingest runs it to answer the client; the processor runs it again because other producers can
write to the raw topic. Each failure is a sentence a game developer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gamemetrics.events.schema import EVENT_TYPES, PROPERTIES_BY_TYPE, Context, Event
from gamemetrics.settings import Settings

_event_decoder = msgspec.json.Decoder(Event)
_context_decoder = msgspec.json.Decoder(Context)
# Lax, as games send numbers as strings ("price": "4.99"); enrichment reads such values exactly.
_properties_decoders = {kind: msgspec.json.Decoder(schema, strict=False) for kind, schema in PROPERTIES_BY_TYPE.items()}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds every event must respect."""

    max_event_bytes: int
    max_depth: int
    max_late: timedelta
    max_future: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_event_bytes=settings.ingest.max_properties_bytes,
            max_depth=settings.ingest.max_properties_depth,
            max_late=timedelta(seconds=settings.ingest.max_late_seconds),
            max_future=timedelta(seconds=settings.ingest.max_future_seconds),
        )


class InvalidEvent(ValueError):
    """An event that breaks the contract; the message says what to fix, `kind` names the broken rule."""

    def __init__(self, message: str, kind: str = "invalid_schema") -> None:
        super().__init__(message)
        self.kind = kind


def decode_event(raw: bytes | msgspec.Raw, *, limits: Limits, now: datetime, allow_history: bool) -> Event:
    """Decode and check one event, or raise InvalidEvent with the reason."""
    if len(raw) > limits.max_event_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes; the limit is {limits.max_event_bytes}", "event_too_large")
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc)) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"event is not valid JSON: {exc}") from None
    # PostgreSQL text and jsonb cannot hold NUL; the escape is the only way JSON can carry one,
    # so the walk over the values runs only for the rare event that has it.
    data = bytes(raw)
    if b"\\u0000" in data and holds_nul(event):
        raise InvalidEvent("a string holds a NUL character (\\u0000), which cannot be stored; remove it")
    # An event whose bytes hold no more brackets than the depth limit cannot nest deeper than it,
    # so the walk over its values is skipped for nearly every event.
    shallow = data.count(b"{") + data.count(b"[") <= limits.max_depth
    check_event(event, limits=limits, now=now, allow_history=allow_history, shallow=shallow)
    return event


def check_event(event: Event, *, limits: Limits, now: datetime, allow_history: bool, shallow: bool = False) -> None:
    """The checks beyond the wire shape: type, properties, nesting (unless the caller knows the event
    is `shallow`) and time."""
    if event.event_type not in EVENT_TYPES:
        raise InvalidEvent(
            f"unknown event_type {event.event_type!r}; expected one of {', '.join(sorted(EVENT_TYPES))}",
            "unknown_event_type")
    if event.event_type == "custom" and not event.name:
        raise InvalidEvent("a custom event needs a `name`")
    depth = 0 if shallow else nesting_depth(json_value(event.properties))
    if depth > limits.max_depth:
        raise InvalidEvent(f"properties are nested {depth} levels deep; the limit is {limits.max_depth}")
    try:
        _properties_decoders[event.event_type].decode(event.properties)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(f"{event.event_type} properties: {_at(exc, '$.properties')}") from None
    try:
        context_of(event)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(f"context: {_at(exc, '$.context')}") from None
    if not shallow and nesting_depth(json_value(event.context)) > limits.max_depth:
        raise InvalidEvent(f"context is nested more than {limits.max_depth} levels deep")
    try:
        event.timestamp.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is year 0 in UTC, which cannot be read back
        raise InvalidEvent(f"timestamp {event.timestamp.isoformat()} is outside the years 1-9999 in UTC") from None
    if event.timestamp - now > limits.max_future:
        raise InvalidEvent(
            f"timestamp {event.timestamp.isoformat()} is more than {_span(limits.max_future)} in the future",
            "timestamp_in_future")
    if not allow_history and now - event.timestamp > limits.max_late:
        raise InvalidEvent(
            f"timestamp {event.timestamp.isoformat()} is more than {_span(limits.max_late)} in the past;"
            " send history through /v1/import", "timestamp_too_old")


def context_of(event: Event) -> Context:
    """The context fields the platform reads, checked (raises msgspec.ValidationError)."""
    return _context_decoder.decode(event.context)


def json_value(raw: msgspec.Raw) -> Any:
    """A JSON text the event decoder already read as well-formed, as Python values."""
    return msgspec.json.decode(raw)


def _at(exc: msgspec.ValidationError, path: str) -> str:
    """A nested document's validation error, its path given from the event's root."""
    message = str(exc)
    return message.replace("`$", f"`{path}") if "`$" in message else f"{message} - at `{path}`"


def nesting_depth(value: Any) -> int:
    """How many levels of objects and arrays `value` holds (a flat object is 1)."""
    if isinstance(value, dict) and not any(isinstance(v, dict | list) for v in value.values()):
        return 1  # the common case, on the hot path: a flat object
    depth = 0
    level: list[Any] = [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def holds_nul(event: Event) -> bool:
    """Whether any string of the event, or any key of its properties or context, contains NUL."""
    level: list[Any] = [event.player_id, event.session_id, event.name, json_value(event.properties),
                        json_value(event.context)]
    while level:
        children: list[Any] = []
        for value in level:
            if isinstance(value, str) and "\x00" in value:
                return True
            if isinstance(value, dict):
                children.extend(value.keys())
                children.extend(value.values())
            elif isinstance(value, list):
                children.extend(value)
        level = children
    return False


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
