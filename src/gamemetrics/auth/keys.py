"""Key sets: the local one kept in the data dir (signs and verifies), and a remote JWKS (verifies).

The local set is a directory of PEM private keys named `<kid>.pem`, the kid being the key's JWK
thumbprint (RFC 7638). The newest signs; every one of them verifies, so a key can be rotated by
adding a new file and removing the old one once its tokens have expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeySource(Protocol):
    """Where a verifier finds the public key a token names by its kid."""

    async def key(self, kid: str) -> PublicKey | None: ...


def public_jwk(key: PublicKey) -> dict[str, Any]:
    """The public key as a JWK with its kid, use and algorithm."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
        jwk["alg"] = "ES256"
    else:
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
        jwk["alg"] = "RS256"
    jwk["kid"] = thumbprint(jwk)
    jwk["use"] = "sig"
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexical order, base64url without padding."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class LocalKeySet:
    """Signing keys in a directory, made on first use; re-read when a token names an unknown kid."""

    def __init__(self, directory: Path, *, reload_every_s: float = 1.0) -> None:
        self.directory = directory
        self._keys: dict[str, PrivateKey] = {}
        self._loaded_at = float("-inf")
        self._reload_every_s = reload_every_s

    def load(self) -> dict[str, PrivateKey]:
        """Every key of the directory by kid (none if it does not exist yet)."""
        keys: dict[str, PrivateKey] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pem"), key=lambda p: p.stat().st_mtime):
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                    keys[public_jwk(private.public_key())["kid"]] = private
        self._keys, self._loaded_at = keys, time.monotonic()
        return keys

    def signing_key(self) -> tuple[str, PrivateKey]:
        """The newest key and its kid; a P-256 key is made (mode 0600) when there is none."""
        keys = self.load()
        if not keys:
            self._create()
            keys = self.load()
        kid = next(reversed(keys))
        return kid, keys[kid]

    def jwks(self) -> dict[str, Any]:
        """The public half of every key, as a JWKS document."""
        return {"keys": [public_jwk(k.public_key()) for k in self.load().values()]}

    async def key(self, kid: str) -> PublicKey | None:
        if kid not in self._keys and time.monotonic() - self._loaded_at >= self._reload_every_s:
            self.load()
        private = self._keys.get(kid)
        return private.public_key() if private is not None else None

    def _create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = public_jwk(private.public_key())["kid"]
        # Written aside and renamed: a reader never sees half a key.
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(tmp, self.directory / f"{kid}.pem")


class RemoteJwks:
    """An OIDC provider's JWKS, fetched over HTTPS, cached, and fetched again for an unknown kid
    (at most every `refetch_after_s`, so tokens with made-up kids cannot hammer the provider)."""

    def __init__(self, url: str, *, cache_s: float = 300.0, refetch_after_s: float = 30.0) -> None:
        self.url = url
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at = float("-inf")
        self._cache_s = cache_s
        self._refetch_after_s = refetch_after_s

    async def key(self, kid: str) -> PublicKey | None:
        age = time.monotonic() - self._fetched_at
        if age >= self._cache_s or (kid not in self._keys and age >= self._refetch_after_s):
            await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
        keys: dict[str, PublicKey] = {}
        for jwk in response.json().get("keys", []):
            if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                keys[jwk["kid"]] = ECAlgorithm.from_jwk(jwk)  # type: ignore[assignment]
            elif jwk.get("kty") == "RSA":
                keys[jwk["kid"]] = RSAAlgorithm.from_jwk(jwk)  # type: ignore[assignment]
        self._keys = keys
