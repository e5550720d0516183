"""Write-key authentication: Bearer token or the HTTP Basic user name (as Segment's SDKs send it)."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers

from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.tenancy.keys import WriteKey
from gamemetrics.tenancy.store import TenancyStore


def key_from_headers(headers: Headers) -> str:
    """The write key a request carries, or a 401 saying how to send one."""
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer" and credentials:
        return credentials
    if scheme == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise IngestError(401, "Authorization: Basic credentials are not valid base64 of UTF-8") from None
        user = decoded.partition(":")[0]
        if user:
            return user
    raise IngestError(
        401, "missing write key: send `Authorization: Bearer <write key>` or the key as the Basic user name"
    )


class RevokedKey(IngestError):
    """A 401 for a key that was revoked: it still names its game, under which the refusal is counted."""

    def __init__(self, key: WriteKey) -> None:
        super().__init__(401, "unknown or revoked write key")
        self.key = key


class KeyResolver:
    """Resolves keys through the store, remembering answers (unknown and revoked keys too) for as
    long as `grants` keeps them: its time to live is how long a revoked key still works."""

    def __init__(self, store: TenancyStore, grants: Memo[str, tuple[WriteKey, bool] | None]) -> None:
        self._store = store
        self._grants = grants

    async def resolve(self, secret: str) -> WriteKey:
        grant = self._grants.get(secret)
        if grant is MISS:
            grant = await self._store.grant(secret)
            self._grants.put(secret, grant)
        if grant is None:
            raise IngestError(401, "unknown or revoked write key")
        key, live = grant
        if not live:
            raise RevokedKey(key)
        return key
