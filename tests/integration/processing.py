"""Raw-topic messages as ingest writes them, and a processor to run over them, for the processor's tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.ports.bus import Message
from gamemetrics.runtime import Platform
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey

_json = msgspec.json.Encoder()


def raw_message(key: CreatedKey, event: dict[str, Any], headers: Mapping[str, str] | None = None) -> Message:
    """`event` in its envelope for `key`'s game, keyed by its player, as ingest appends it."""
    envelope = RawEnvelope(key.tenant_id, key.game_id, datetime.now(UTC), msgspec.Raw(_json.encode(event)))
    return Message(partition_key(key.tenant_id, event["player_id"]), _json.encode(envelope), dict(headers or {}))


def make_processor(platform: Platform, settings: Settings, *, batch_size: int = 1000,
                   poll_timeout: float = 0.2, after_batch: Callable[[], object] | None = None) -> Processor:
    """A member of the processor group with the settings' limits and rates."""
    return Processor(
        platform.bus, EventSink(platform.pool, session_gap=timedelta(minutes=30)),
        limits=Limits.from_settings(settings), rates=settings.processor.fx_rates_usd, batch_size=batch_size,
        poll_timeout=poll_timeout, after_batch=after_batch,
    )
