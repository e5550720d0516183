"""The `player.events.processed` contract: one stored event, as its consumers read it.

The processor publishes every event it stores, keyed like the raw message (tenant + player), with
the schema version in a header; consumers (recommender, notifier, the dashboard's live feed) key
on `event_id`, since a replayed batch publishes again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import msgspec

from gamemetrics.ports.bus import Record

SCHEMA_VERSION_HEADER = "schema_version"
SCHEMA_VERSION = "1"
HEADERS: Mapping[str, str] = {SCHEMA_VERSION_HEADER: SCHEMA_VERSION}


class ProcessedEvent(msgspec.Struct, omit_defaults=True):
    """The value of a `player.events.processed` message (schema version 1)."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    player_id: str
    timestamp: datetime
    received_at: datetime
    source: str
    is_new_player: bool
    properties: msgspec.Raw
    context: msgspec.Raw
    name: str | None = None
    session_id: str | None = None
    platform: str | None = None
    os: str | None = None
    app_version: str | None = None
    country: str | None = None
    revenue_usd: Decimal | None = None


class UnreadableProcessedEvent(ValueError):
    """A record of the processed topic that is not a processed event of a known schema version."""


_decoder = msgspec.json.Decoder(ProcessedEvent)


def read_processed(record: Record) -> ProcessedEvent:
    """The event a processed-topic record carries; UnreadableProcessedEvent names where it sits."""
    version = record.headers.get(SCHEMA_VERSION_HEADER)
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    if version != SCHEMA_VERSION:
        raise UnreadableProcessedEvent(f"{where}: schema version {version!r}, this reader knows {SCHEMA_VERSION!r}")
    try:
        return _decoder.decode(record.value)
    except msgspec.DecodeError as exc:
        raise UnreadableProcessedEvent(f"{where}: {exc}") from None
