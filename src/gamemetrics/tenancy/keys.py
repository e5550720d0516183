"""Write keys: made random, shown once, kept only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

KEY_PREFIX = "gm_"


@dataclass(frozen=True, slots=True)
class WriteKey:
    """What a write key grants: sending events for one game of one tenant."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    allow_import: bool


def new_key_secret(environment: str) -> str:
    """A fresh key such as `gm_production_<43 url-safe chars>`."""
    return f"{KEY_PREFIX}{environment}_{secrets.token_urlsafe(32)}"


def key_digest(secret: str) -> bytes:
    """The only form of a key the database holds; lookups compare digests, never the key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
