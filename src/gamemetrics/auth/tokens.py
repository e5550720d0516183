"""Access tokens: issuing (the users service) and checking (every service).

A token is a JWT signed with RS256 or ES256 by a key the verifier knows by its `kid`, with the
configured issuer and audience, not expired, not used before its `nbf`, naming a subject, a
tenant (`tenant_id`) and its scopes (`scope`, space-separated, or an `scp` list).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gamemetrics.auth.keys import KeySource, PrivateKey

ALGORITHMS = ("RS256", "ES256")
TENANT_CLAIM = "tenant_id"
_KEY_TYPES = {"RS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey}


class InvalidToken(Exception):
    """No token, or one that cannot be trusted: the answer is 401."""


class InsufficientScope(Exception):
    """A good token without the scope the request needs: the answer is 403."""

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant comes from here, never from the request."""

    tenant_id: uuid.UUID
    subject: str
    scopes: frozenset[str]
    expires_at: datetime
    token_id: str = ""  # the jti, named in the audit log when a token erases or exports

    def require(self, scope: str) -> None:
        """Raise InsufficientScope unless the token grants `scope`."""
        if scope not in self.scopes:
            raise InsufficientScope(f"this token lacks the scope {scope!r}", scope)

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at


class TokenVerifier:
    """Checks bearer tokens against a key source."""

    def __init__(self, keys: KeySource, *, issuer: str, audience: str, leeway_s: float = 30.0) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s

    async def verify(self, token: str) -> Principal:
        """The token's principal, or InvalidToken saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"not a JWT: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"algorithm {alg!r} is not accepted; use one of {', '.join(ALGORITHMS)}")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no key (kid)")
        try:
            key = await self._keys.key(kid)
        except Exception as exc:  # the key set could not be fetched: not the caller's fault, but no trust either
            raise InvalidToken(f"the signing keys could not be read: {exc}") from None
        if key is None:
            raise InvalidToken(f"unknown key id {kid!r}")
        if not isinstance(key, _KEY_TYPES[alg]):
            raise InvalidToken(f"key {kid!r} cannot verify {alg}")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from None
        try:
            tenant = uuid.UUID(str(claims[TENANT_CLAIM]))
        except (KeyError, ValueError):
            raise InvalidToken(f"the token names no tenant ({TENANT_CLAIM} claim)") from None
        return Principal(tenant, str(claims["sub"]), _scopes(claims), datetime.fromtimestamp(claims["exp"], UTC),
                         str(claims.get("jti", "")))


def _scopes(claims: dict[str, object]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scp, list):
        return frozenset(str(s) for s in scp)
    return frozenset()


class Signer(Protocol):
    """Where an issuer finds the key to sign with."""

    def signing_key(self) -> tuple[str, PrivateKey]: ...


class TokenIssuer:
    """Mints access tokens (RFC 9068) with the signer's current key."""

    def __init__(self, keys: Signer, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl_s = ttl_s

    def issue(self, tenant_id: uuid.UUID, scopes: Iterable[str], *, subject: str | None = None,
              ttl_s: int | None = None) -> str:
        """A signed access token (RFC 9068 shape) for `tenant_id` with `scopes`."""
        kid, key = self._keys.signing_key()
        now = int(time.time())
        claims = {
            "iss": self._issuer, "aud": self._audience, "sub": subject or f"tenant:{tenant_id}",
            "client_id": subject or f"tenant:{tenant_id}", "iat": now, "nbf": now,
            "exp": now + (ttl_s if ttl_s is not None else self._ttl_s), "jti": str(uuid.uuid4()),
            TENANT_CLAIM: str(tenant_id), "scope": " ".join(sorted(set(scopes))),
        }
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, "typ": "at+jwt"})
