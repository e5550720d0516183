"""The platform secret and the keys derived from it: one per purpose, so a key that leaks from one
use (say, the tombstone hashes) says nothing about another (the sealed signing keys)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gamemetrics.settings import Settings

TOMBSTONES = b"gamemetrics/tombstones/v1"
AUDIT_CHAIN = b"gamemetrics/audit-chain/v1"
SIGNING_KEYS = b"gamemetrics/signing-keys/v1"
GDPR_MESSAGES = b"gamemetrics/gdpr-messages/v1"
_NONCE = 12


def platform_secret(settings: Settings) -> bytes:
    """`GAMEMETRICS_SECRET_KEY`, or the random secret kept in the data dir (made on first use)."""
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value().encode()
        if len(value) < 32:
            raise ValueError("GAMEMETRICS_SECRET_KEY must be at least 32 characters")
        return value
    return _secret_file(settings.secret_path())


def _secret_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two processes start at once, one writes and both read what it wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_urlsafe(48).encode())
    return path.read_bytes().strip()


def derive(secret: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose."""
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """AES-256-GCM: nonce + ciphertext; `context` is authenticated but not stored."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """The plaintext of `seal`; raises `cryptography.exceptions.InvalidTag` on a wrong key or context."""
    return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], context)
