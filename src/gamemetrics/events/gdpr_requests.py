"""The `gdpr.requests` contract: what to erase, with the player id sealed.

A bus keeps messages after they are read (the embedded log until it is trimmed, Kafka until its
retention), so the player id travels encrypted and the key is the tombstone: the bus never holds
an erased player's id in clear. Every service that holds player data reads these requests.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import msgspec

from gamemetrics.auth.secret import GDPR_MESSAGES, derive, seal, unseal
from gamemetrics.ports.bus import Message


class ErasureRequest(msgspec.Struct, frozen=True):
    """An erasure of one player of one game, as requested."""

    erasure_id: uuid.UUID
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    player_id: str
    requested_by: str
    requested_at: datetime


class _Wire(msgspec.Struct, frozen=True):
    erasure_id: uuid.UUID
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    player: str  # base64 of the sealed player id
    requested_by: str
    requested_at: datetime
    kind: str = "erase"
    schema_version: int = 1


class RequestCodec:
    """Seals and opens erasure requests with a key derived from the platform secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive(secret, GDPR_MESSAGES)

    def encode(self, request: ErasureRequest, player_hash: bytes) -> Message:
        sealed = seal(self._key, request.player_id.encode("utf-8", "surrogatepass"), context=request.erasure_id.bytes)
        wire = _Wire(request.erasure_id, request.tenant_id, request.game_id, base64.b64encode(sealed).decode(),
                     request.requested_by, request.requested_at)
        return Message(request.tenant_id.bytes + player_hash, msgspec.json.encode(wire), {"schema_version": "1"})

    def decode(self, value: bytes) -> ErasureRequest:
        """The request; raises ValueError when it cannot be read or opened."""
        try:
            wire = msgspec.json.decode(value, type=_Wire)
            player = unseal(self._key, base64.b64decode(wire.player), context=wire.erasure_id.bytes)
        except Exception as exc:  # unreadable, or sealed under another secret
            raise ValueError(f"unreadable erasure request: {type(exc).__name__}: {exc}") from None
        return ErasureRequest(wire.erasure_id, wire.tenant_id, wire.game_id, player.decode("utf-8", "surrogatepass"),
                              wire.requested_by, wire.requested_at)
