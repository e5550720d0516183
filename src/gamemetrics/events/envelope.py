"""What ingest appends to `player.events.raw`: the event as sent, plus who sent it and when."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

Source = Literal["live", "import"]


class RawEnvelope(msgspec.Struct, omit_defaults=True):
    """One message on the raw topic. The tenant and game come from the write key, never the body."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    received_at: datetime
    event: msgspec.Raw
    source: Source = "live"
    schema_version: int = 1


def partition_key(tenant_id: uuid.UUID, player_id: str, *, tenant_bytes: bytes | None = None) -> bytes:
    """Tenant + player: one player's events stay in order on one partition. A loop over many events
    passes `tenant_bytes` (`tenant_id.bytes`, a Python property) made once for their tenant."""
    return (tenant_bytes or tenant_id.bytes) + player_id.encode()
