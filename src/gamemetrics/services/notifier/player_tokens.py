"""Player tokens: what a game client shows to read its player's inbox. The game's server asks for
one (scope `notifications:send`) for the player it has signed in and hands it to the client; the
token names the tenant, game and player and expires, and the platform's signature on it is checked
on every read, so a player reads only their own inbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import msgspec

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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PlayerTokens:
    """Issues and checks player tokens with a key of their own purpose."""

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, *,
              now: float | None = None) -> PlayerClaim:
        return PlayerClaim(tenant_id, game_id, player_id, int(now or time.time()) + self._ttl)

    def encode(self, claim: PlayerClaim) -> str:
        payload = msgspec.json.encode([str(claim.tenant_id), str(claim.game_id), claim.player_id, claim.expires_at])
        return f"{PREFIX}{_b64(payload)}.{_b64(self._mac(payload))}"

    def check(self, token: str, *, now: float | None = None) -> PlayerClaim:
        """The claim `token` carries; BadPlayerToken unless signed here and unexpired."""
        try:
            body, _, mac = token.removeprefix(PREFIX).partition(".")
            payload = _unb64(body)
            valid = token.startswith(PREFIX) and hmac.compare_digest(self._mac(payload), _unb64(mac))
            tenant, game, player, expires = msgspec.json.decode(payload, type=tuple[str, str, str, int]) \
                if valid else ("", "", "", 0)
        except (ValueError, msgspec.DecodeError):
            valid = False
        if not valid:
            raise BadPlayerToken("not a player token of this platform")
        if expires <= (now or time.time()):
            raise BadPlayerToken("the player token has expired; ask the game's server for a new one")
        return PlayerClaim(uuid.UUID(tenant), uuid.UUID(game), player, expires)
