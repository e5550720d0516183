"""Player tokens: what a game client shows to read its player's inbox. The game's server asks for
one (scope `notifications:send`) for the player it has signed in and hands it to the client; the
token names the tenant, game and player and expires, and the platform's signature on it is checked
on every read, so a player reads only their own inbox."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import msgspec

from gamemetrics.services.notifier.signing import Signer

PLAYER_TOKEN_PURPOSE = b"gamemetrics/player-tokens/v1"
PREFIX = "gmp_"


@dataclass(frozen=True, slots=True)
class PlayerClaim:
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    player_id: str
    expires_at: int


class BadPlayerToken(ValueError):
    """A token this platform did not sign, altered, or expired."""


class PlayerTokens:
    """Issues and checks player tokens with a key of their own purpose."""

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._signer = Signer(key)
        self._ttl = ttl_seconds

    def issue(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, *,
              now: float | None = None) -> PlayerClaim:
        return PlayerClaim(tenant_id, game_id, player_id, int(now or time.time()) + self._ttl)

    def encode(self, claim: PlayerClaim) -> str:
        payload = msgspec.json.encode([str(claim.tenant_id), str(claim.game_id), claim.player_id, claim.expires_at])
        return PREFIX + self._signer.sign(payload)

    def check(self, token: str, *, now: float | None = None) -> PlayerClaim:
        """The claim `token` carries; BadPlayerToken unless signed here and unexpired."""
        try:
            if not token.startswith(PREFIX):
                raise ValueError("no player token prefix")
            payload = self._signer.verify(token.removeprefix(PREFIX))
            tenant, game, player, expires = msgspec.json.decode(payload, type=tuple[str, str, str, int])
        except (ValueError, msgspec.DecodeError):
            raise BadPlayerToken("not a player token of this platform") from None
        if expires <= (now or time.time()):
            raise BadPlayerToken("the player token has expired; ask the game's server for a new one")
        return PlayerClaim(uuid.UUID(tenant), uuid.UUID(game), player, expires)
