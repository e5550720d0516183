"""Signed one-click unsubscribe links (RFC 8058): the link names a player, a game and a category,
and its signature, keyed from the platform secret, proves the notifier made it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import msgspec

from gamemetrics.services.notifier.signing import Signer

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


class LinkSigner:
    """Makes and checks unsubscribe tokens with a key of their own purpose."""

    def __init__(self, key: bytes, public_url: str) -> None:
        self._signer = Signer(key, mac_bytes=16)
        self._base = public_url.rstrip("/") + PATH

    def token(self, who: Unsubscription) -> str:
        payload = msgspec.json.encode([str(who.tenant_id), str(who.game_id), who.player_id, who.category])
        return self._signer.sign(payload)

    def url(self, who: Unsubscription) -> str:
        return f"{self._base}/{self.token(who)}"

    def headers(self, who: Unsubscription) -> dict[str, str]:
        """The List-Unsubscribe and List-Unsubscribe-Post headers of an email to `who`."""
        return {"List-Unsubscribe": f"<{self.url(who)}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def check(self, token: str) -> Unsubscription:
        """Whom `token` unsubscribes; BadLink unless this platform signed it."""
        try:
            payload = self._signer.verify(token)
            tenant, game, player, category = msgspec.json.decode(payload, type=tuple[str, str, str, str])
            return Unsubscription(uuid.UUID(tenant), uuid.UUID(game), player, category)
        except (ValueError, msgspec.DecodeError) as exc:
            raise BadLink("this unsubscribe link is not valid") from exc
