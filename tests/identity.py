"""Test helpers for the identity work: read the platform's signing key the way only the platform
can (sealed in the database under the secret in its data dir), to forge tokens for refusal tests."""

from __future__ import annotations

from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import serialization

from gamemetrics.auth.keys import PrivateKey
from gamemetrics.auth.secret import SIGNING_KEYS, derive, unseal


def platform_signing_key(database_url: str, data_dir: Path) -> tuple[str, PrivateKey]:
    """The kid and private key the platform signs with now (made by its first token)."""
    secret = (data_dir / "secret.key").read_bytes().strip()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT kid, sealed_key FROM signing_keys WHERE superseded_at IS NULL AND retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "the platform has no signing key yet: issue a token first"
    kid, sealed = row
    pem = unseal(derive(secret, SIGNING_KEYS), bytes(sealed), context=kid.encode())
    key = serialization.load_pem_private_key(pem, password=None)
    return kid, key  # type: ignore[return-value]
