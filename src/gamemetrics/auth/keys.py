"""Key types, JWKs and their thumbprints, and a remote JWKS (an OIDC provider's keys, to verify with).

The platform's own signing keys are kept in its database (`auth.signing`); a kid is always the
key's JWK thumbprint (RFC 7638).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Protocol

import httpx
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


def key_from_jwk(jwk: dict[str, Any]) -> PublicKey | None:
    """The public key of a signing JWK (EC P-256 or RSA); None for anything else."""
    if jwk.get("use", "sig") != "sig":
        return None
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        ec_key = ECAlgorithm.from_jwk(jwk)
        # A JWK carrying its private member parses as the private key: only its public half verifies.
        return ec_key.public_key() if isinstance(ec_key, ec.EllipticCurvePrivateKey) else ec_key
    if jwk.get("kty") == "RSA":
        rsa_key = RSAAlgorithm.from_jwk(jwk)
        return rsa_key.public_key() if isinstance(rsa_key, rsa.RSAPrivateKey) else rsa_key
    return None


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
            key = key_from_jwk(jwk) if "kid" in jwk else None
            if key is not None:
                keys[jwk["kid"]] = key
        self._keys = keys
