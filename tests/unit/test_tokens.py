"""Access tokens: what the platform's issuer mints with its signing keys (kept in the database)
verifies; everything a forger or a misconfigured client could send is refused with a reason."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import msgspec
import pytest
import pytest_asyncio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.auth.keys import PrivateKey, public_jwk
from gamemetrics.auth.secret import SIGNING_KEYS, derive, seal, unseal
from gamemetrics.auth.signing import DatabaseKeySet, SigningKeyStore
from gamemetrics.auth.tokens import InsufficientScope, InvalidToken, TokenIssuer, TokenVerifier

ISSUER, AUDIENCE = "gamemetrics-test", "gamemetrics-api"
TENANT = uuid.uuid4()
SECRET = os.urandom(32)


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(database_url, max_size=2, name="test-tokens")
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def keys(pool: AsyncConnectionPool) -> SigningKeyStore:
    store = SigningKeyStore(pool, SECRET, rotate_after=timedelta(days=30), retire_after=timedelta(days=1),
                            refresh_s=0.0)
    await store.current()  # makes the first key, as the users service does before it signs
    return store


@pytest.fixture
def issuer(keys: SigningKeyStore) -> TokenIssuer:
    return TokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, ttl_s=600)


@pytest.fixture
def verifier(pool: AsyncConnectionPool) -> TokenVerifier:
    return TokenVerifier(DatabaseKeySet(pool, refetch_after_s=0.0), issuer=ISSUER, audience=AUDIENCE, leeway_s=0)


@dataclass(frozen=True)
class _FixedKey:
    """Signs with one given key (the store itself only makes P-256 keys)."""

    kid: str
    key: PrivateKey

    def signing_key(self) -> tuple[str, PrivateKey]:
        return self.kid, self.key


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client-1", "iat": now, "nbf": now, "exp": now + 60,
              "tenant_id": str(TENANT), "scope": "analytics:read players:read"}
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(keys: SigningKeyStore, **override: Any) -> str:
    kid, key = keys.signing_key()
    return jwt.encode(_claims(**override), key, algorithm="ES256", headers={"kid": kid})


async def test_a_minted_token_verifies_with_its_tenant_and_scopes(issuer: TokenIssuer, verifier: TokenVerifier,
                                                                 pool: AsyncConnectionPool) -> None:
    token = issuer.issue(TENANT, ["analytics:read"])
    principal = await verifier.verify(token)
    assert principal.tenant_id == TENANT
    assert principal.scopes == {"analytics:read"}
    principal.require("analytics:read")
    with pytest.raises(InsufficientScope, match="gdpr:erase"):
        principal.require("gdpr:erase")
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    # The private key is kept sealed under the platform secret: the stored bytes are no key, and
    # another secret cannot open them.
    kid = jwt.get_unverified_header(token)["kid"]
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT sealed_key FROM signing_keys WHERE kid = %s", (kid,))).fetchone()
    assert row is not None
    sealed = bytes(row[0])
    assert b"PRIVATE KEY" not in sealed
    assert b"PRIVATE KEY" in unseal(derive(SECRET, SIGNING_KEYS), sealed, context=kid.encode())
    with pytest.raises(InvalidTag):
        unseal(derive(os.urandom(32), SIGNING_KEYS), sealed, context=kid.encode())


async def test_scp_list_is_read_as_scopes(keys: SigningKeyStore, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(_signed(keys, scope=None, scp=["analytics:read"]))
    assert principal.scopes == {"analytics:read"}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        # Offsets from when the test runs (not when it was collected, which may be an hour before).
        ({"exp": -5}, "expired"),
        ({"nbf": 3600}, "not yet valid"),
        ({"aud": "someone-else"}, "[Aa]udience"),
        ({"iss": "https://evil.example"}, "[Ii]ssuer"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"tenant_id": None}, "tenant"),
        ({"tenant_id": "acme"}, "tenant"),
    ],
)
async def test_bad_claims_are_refused(keys: SigningKeyStore, verifier: TokenVerifier, override: dict[str, Any],
                                      reason: str) -> None:
    now = int(time.time())
    claims = {name: now + value if name in ("exp", "nbf") and value is not None else value
              for name, value in override.items()}
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(_signed(keys, **claims))


async def test_alg_none_is_refused(keys: SigningKeyStore, verifier: TokenVerifier) -> None:
    kid, _ = keys.signing_key()
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    with pytest.raises(InvalidToken, match="algorithm 'none'"):
        await verifier.verify(f"{header.decode()}.{body.decode()}.")


async def test_hmac_with_the_public_key_as_secret_is_refused(keys: SigningKeyStore, verifier: TokenVerifier) -> None:
    """The classic algorithm confusion: HS256 signed with the (public) verification key."""
    kid, key = keys.signing_key()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Made by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret.
    forged = _hs256(json.dumps(_claims()).encode(), public_pem, kid)
    with pytest.raises(InvalidToken, match="HS256"):
        await verifier.verify(forged)


def _hs256(payload: bytes, secret: bytes, kid: str) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "kid": kid}).encode()) + b"." + b64(payload)
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


async def test_unknown_kid_and_foreign_keys_are_refused(keys: SigningKeyStore, verifier: TokenVerifier) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    kid = public_jwk(stranger.public_key())["kid"]
    with pytest.raises(InvalidToken, match="unknown key id"):
        await verifier.verify(jwt.encode(_claims(), stranger, algorithm="ES256", headers={"kid": kid}))
    # A stranger's signature under one of our kids.
    our_kid, _ = keys.signing_key()
    with pytest.raises(InvalidToken, match="[Ss]ignature"):
        await verifier.verify(jwt.encode(_claims(), stranger, algorithm="ES256", headers={"kid": our_kid}))
    no_kid = jwt.encode(_claims(), stranger, algorithm="ES256")
    with pytest.raises(InvalidToken, match="kid"):
        await verifier.verify(no_kid)


async def test_tampered_and_garbage_tokens_are_refused(keys: SigningKeyStore, verifier: TokenVerifier) -> None:
    token = _signed(keys)
    header, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["tenant_id"] = str(uuid.uuid4())
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{tampered}.{signature}")
    for garbage in ("", "abc", "a.b.c", "Bearer x"):
        with pytest.raises(InvalidToken):
            await verifier.verify(garbage)


async def test_rs256_keys_sign_and_verify_and_rotation_keeps_old_tokens(
    keys: SigningKeyStore, issuer: TokenIssuer, verifier: TokenVerifier, pool: AsyncConnectionPool
) -> None:
    old_token = issuer.issue(TENANT, ["analytics:read"])
    rotated = await keys.rotate()
    assert (await keys.current())[0] == rotated
    rotated_token = issuer.issue(TENANT, ["analytics:read"])
    assert jwt.get_unverified_header(rotated_token)["kid"] == rotated != jwt.get_unverified_header(old_token)["kid"]
    # An RSA key published beside them (superseded, so the store keeps signing with its own).
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = public_jwk(rsa_key.public_key())
    kid = jwk["kid"]
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_key, superseded_at)"
            " VALUES (%s, 'RS256', %s, %s, now())",
            (kid, msgspec.json.encode(jwk).decode(), seal(derive(SECRET, SIGNING_KEYS), pem, context=kid.encode())))
    new_token = TokenIssuer(_FixedKey(kid, rsa_key), issuer=ISSUER, audience=AUDIENCE, ttl_s=600).issue(
        TENANT, ["analytics:read"])
    assert jwt.get_unverified_header(new_token) == {"alg": "RS256", "kid": kid, "typ": "at+jwt"}
    for token in (old_token, rotated_token, new_token):
        assert (await verifier.verify(token)).tenant_id == TENANT
    # ES256 claimed for an RSA key is refused, not coerced.
    forged = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": kid})
    h, b, s = forged.split(".")
    header = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
    header["alg"] = "ES256"
    h2 = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="cannot verify ES256"):
        await verifier.verify(f"{h2}.{b}.{s}")
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {kid, rotated,
                                                              jwt.get_unverified_header(old_token)["kid"]}


async def test_a_key_made_just_after_a_read_verifies_and_made_up_kids_share_one_read(
        keys: SigningKeyStore, issuer: TokenIssuer, pool: AsyncConnectionPool) -> None:
    reads = 0

    class CountingKeySet(DatabaseKeySet):
        async def _load(self) -> None:
            nonlocal reads
            reads += 1
            await super()._load()

    verifier = TokenVerifier(CountingKeySet(pool, refetch_after_s=0.5), issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    assert (await verifier.verify(issuer.issue(TENANT, ["analytics:read"]))).tenant_id == TENANT
    await keys.rotate()  # a key made just after the verifier read the table
    await keys.current()
    assert (await verifier.verify(issuer.issue(TENANT, ["analytics:read"]))).tenant_id == TENANT
    assert reads == 2
    forged = [jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                         headers={"kid": f"made-up-{i}"}) for i in range(20)]
    refused = await asyncio.gather(*(verifier.verify(token) for token in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) and "unknown key id" in str(r) for r in refused)
    assert reads == 3
