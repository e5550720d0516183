"""Signed one-click unsubscribe links (RFC 8058): the link names a player, a game and a category,
and its signature, keyed from the platform secret, proves the notifier made it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

import msgspec

UNSUBSCRIBE_PURPOSE = b"gamemetrics/unsubscribe-links/v1"
PATH = "/v1/notifications/unsubscribe"


@dataclass(frozen=True, slots=True)
class Unsubscription:
    """Whom a link unsubscribes, from which category's email."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    player_id: str
    category: str


class BadLink(ValueError):
    """A link that was not made by this platform, or was altered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks unsubscribe tokens with a key of their own purpose."""

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._base = public_url.rstrip("/") + PATH

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def token(self, who: Unsubscription) -> str:
        payload = msgspec.json.encode([str(who.tenant_id), str(who.game_id), who.player_id, who.category])
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def url(self, who: Unsubscription) -> str:
        return f"{self._base}/{self.token(who)}"

    def headers(self, who: Unsubscription) -> dict[str, str]:
        """The List-Unsubscribe and List-Unsubscribe-Post headers of an email to `who`."""
        return {"List-Unsubscribe": f"<{self.url(who)}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def check(self, token: str) -> Unsubscription:
        """Whom `token` unsubscribes; BadLink unless this platform signed it."""
        try:
            encoded, _, mac = token.partition(".")
            payload = _unb64(encoded)
            if not hmac.compare_digest(self._mac(payload), _unb64(mac)):
                raise BadLink("this unsubscribe link is not valid")
            tenant, game, player, category = msgspec.json.decode(payload, type=tuple[str, str, str, str])
            return Unsubscription(uuid.UUID(tenant), uuid.UUID(game), player, category)
        except (ValueError, msgspec.DecodeError) as exc:
            raise BadLink("this unsubscribe link is not valid") from exc
