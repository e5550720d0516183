"""Token signing keys kept in the database: made, rotated and retired there, published as a JWKS.

Each key has a kid (its RFC 7638 thumbprint). The newest active key signs. When it is older than
the rotation age a new one is made and the old one is marked superseded; it stays in the JWKS
until every token it signed has expired (`retire_after`), then it is retired. Private keys are
sealed with a key derived from the platform secret, so a copy of the table alone signs nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.auth.keys import PrivateKey, PublicKey, key_from_jwk, public_jwk
from gamemetrics.auth.secret import SIGNING_KEYS, derive, seal, unseal

_ROTATION_LOCK = 0x676D5F6B657973  # "gm_keys": one rotation at a time across processes


class SigningKeyStore:
    """Signs with the newest key, rotating it when due; publishes every key not yet retired."""

    def __init__(self, pool: AsyncConnectionPool, secret: bytes, *, rotate_after: timedelta,
                 retire_after: timedelta, refresh_s: float = 10.0) -> None:
        self._pool = pool
        self._seal_key = derive(secret, SIGNING_KEYS)
        self._rotate_after = rotate_after
        self._retire_after = retire_after
        self._refresh_s = refresh_s
        self._current: tuple[str, PrivateKey] | None = None
        self._checked_at = float("-inf")

    async def current(self) -> tuple[str, PrivateKey]:
        """The signing key and its kid (re-read every few seconds; a key is made or rotated when due)."""
        if self._current is None or time.monotonic() - self._checked_at >= self._refresh_s:
            self._current = await self._load_or_rotate()
            self._checked_at = time.monotonic()
        return self._current

    def signing_key(self) -> tuple[str, PrivateKey]:
        """The key `current` last returned, for the synchronous issuer."""
        if self._current is None:
            raise RuntimeError("call `await current()` before signing")
        return self._current

    async def rotate(self) -> str:
        """Make a new signing key now (the old ones stay published until retired); its kid."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROTATION_LOCK,))
            kid = await self._create(conn)
        self._current, self._checked_at = None, float("-inf")
        return kid

    async def jwks(self) -> dict[str, Any]:
        """Every published key, as a JWKS document."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT public_jwk FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC"
            )
            return {"keys": [row[0] for row in await cur.fetchall()]}

    async def describe(self) -> list[dict[str, Any]]:
        """Every key with its dates, newest first (no private parts)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT kid, algorithm, created_at, superseded_at, retired_at FROM signing_keys"
                " ORDER BY created_at DESC"
            )
            names = ("kid", "algorithm", "created_at", "superseded_at", "retired_at")
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def _load_or_rotate(self) -> tuple[str, PrivateKey]:
        async with self._pool.connection() as conn, conn.transaction():
            row = await _newest(conn)
            if row is None or row[2] > self._rotate_after.total_seconds():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROTATION_LOCK,))
                row = await _newest(conn)  # another process may have rotated while we waited
                if row is None or row[2] > self._rotate_after.total_seconds():
                    await self._create(conn)
                    row = await _newest(conn)
            await conn.execute(
                "UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL"
                " AND superseded_at < now() - make_interval(secs => %s)",
                (self._retire_after.total_seconds(),),
            )
        assert row is not None
        kid, sealed, _ = row
        pem = unseal(self._seal_key, sealed, context=kid.encode())
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return kid, private

    async def _create(self, conn: AsyncConnection) -> str:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        await conn.execute(
            "UPDATE signing_keys SET superseded_at = now() WHERE superseded_at IS NULL AND retired_at IS NULL"
        )
        await conn.execute(
            "INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_key) VALUES (%s, %s, %s, %s)",
            (jwk["kid"], jwk["alg"], msgspec.json.encode(jwk).decode(),
             seal(self._seal_key, pem, context=jwk["kid"].encode())),
        )
        return str(jwk["kid"])


async def _newest(conn: AsyncConnection) -> tuple[str, bytes, float] | None:
    """The signing key's kid, sealed private key and age in seconds; None before the first key."""
    cur = await conn.execute(
        "SELECT kid, sealed_key, extract(epoch FROM now() - created_at)::float8 FROM signing_keys"
        " WHERE superseded_at IS NULL AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
    )
    row = await cur.fetchone()
    if row is None:
        return None
    kid, sealed, age = row
    return str(kid), bytes(sealed), float(age)


class DatabaseKeySet:
    """The published keys, read from the database: what every service on the platform's own
    database verifies with. Cached; an unknown kid re-reads the table, at most once per
    `refetch_after_s`: a caller whose kid is unknown waits for the next allowed read (shared by
    every caller waiting), so a key made moments after the last read (the first token after
    start-up, a rotation) is found, and made-up kids cost their senders the wait, not the
    database a query each."""

    def __init__(self, pool: AsyncConnectionPool, *, cache_s: float = 300.0, refetch_after_s: float = 1.0) -> None:
        self._pool = pool
        self._keys: dict[str, PublicKey] = {}
        self._loaded_at = float("-inf")
        self._cache_s = cache_s
        self._refetch_after_s = refetch_after_s
        self._loading = asyncio.Lock()

    async def key(self, kid: str) -> PublicKey | None:
        age = time.monotonic() - self._loaded_at
        if age >= self._cache_s:
            await self._reload(older_than=self._cache_s)
        elif kid not in self._keys:
            await asyncio.sleep(max(0.0, self._refetch_after_s - age))
            await self._reload(older_than=self._refetch_after_s)
        return self._keys.get(kid)

    async def _reload(self, *, older_than: float) -> None:
        async with self._loading:
            if time.monotonic() - self._loaded_at >= older_than:  # else a caller before us just read it
                await self._load()

    async def _load(self) -> None:
        self._loaded_at = time.monotonic()
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT kid, public_jwk FROM signing_keys WHERE retired_at IS NULL")
            rows = await cur.fetchall()
        keys: dict[str, PublicKey] = {}
        for kid, jwk in rows:
            key = key_from_jwk(jwk)
            if key is not None:
                keys[kid] = key
        self._keys = keys
