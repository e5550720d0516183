"""The platform secret and the keys derived from it: one per purpose, so a key that leaks from one
use (say, the tombstone hashes) says nothing about another (the sealed signing keys)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: when two processes start at once, one link wins
        # and both read the whole of what it wrote, never a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_urlsafe(48).encode())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret (under 32 characters); restore it from a backup")
    return secret


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
