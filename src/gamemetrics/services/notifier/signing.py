"""Tokens the notifier signs itself (player tokens, unsubscribe links): `<payload>.<mac>`, both in
unpadded base64url, the MAC an HMAC-SHA256 under a key of the token's own purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac


def b64encode(data: bytes) -> str:
    """Unpadded base64url, as tokens and Web Push keys carry it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    """The bytes of unpadded base64url text; ValueError when it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs payloads and checks them back, with MACs cut to `mac_bytes` (a link in an email is
    kept short; a bearer credential keeps the whole MAC)."""

    def __init__(self, key: bytes, *, mac_bytes: int = 32) -> None:
        self._key = key
        self._mac_bytes = mac_bytes

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:self._mac_bytes]

    def sign(self, payload: bytes) -> str:
        return f"{b64encode(payload)}.{b64encode(self._mac(payload))}"

    def verify(self, token: str) -> bytes:
        """The payload of `token`; ValueError unless this key signed it unaltered."""
        encoded, _, mac = token.partition(".")
        payload = b64decode(encoded)
        if not hmac.compare_digest(self._mac(payload), b64decode(mac)):
            raise ValueError("the signature does not match")
        return payload
