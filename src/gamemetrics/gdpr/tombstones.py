"""Tombstones: the keyed hash that stands for an erased player.

HMAC-SHA-256 under a key derived from the platform secret, over tenant, game and player id. The
platform can tell that an incoming event belongs to an erased player, but cannot say who they
were, and without the secret neither can anyone reading the database.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from collections.abc import Iterable

from gamemetrics.auth.secret import TOMBSTONES, derive

PlayerKey = tuple[uuid.UUID, uuid.UUID, str]

# Erasure takes this advisory lock exclusively while it deletes; the processor takes it shared
# around each batch, so a batch either finished before the deletion (and is deleted with the rest)
# or starts after the tombstone is committed (and sees it).
ERASURE_LOCK = 0x676D5F6572617365  # "gm_erase"


class Tombstones:
    """Hashes player keys with the tombstone key."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive(secret, TOMBSTONES)
        # The processor hashes every player of every batch; active players come back batch after batch.
        self._cached_hash = functools.lru_cache(maxsize=200_000)(self._player_hash)

    def player_hash(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str) -> bytes:
        """The tombstone of one player of one game (UUIDs are fixed-length, so the input is unambiguous)."""
        return self._cached_hash(tenant_id, game_id, player_id)

    def _player_hash(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str) -> bytes:
        message = tenant_id.bytes + game_id.bytes + player_id.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hashes(self, players: Iterable[PlayerKey]) -> dict[bytes, PlayerKey]:
        """Tombstone → player key for each distinct player."""
        return {self.player_hash(*key): key for key in set(players)}
