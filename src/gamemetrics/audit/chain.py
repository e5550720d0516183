"""The audit log as a hash chain: each entry carries the MAC of the one before it, and its own MAC
covers its content and that link.

The MAC is HMAC-SHA-256 under a key derived from the platform secret, so someone who can write
the table but does not hold the secret cannot re-forge the chain after changing an entry.
`verify` walks the chain in order and names the first entry that was changed (its content no
longer matches its MAC), removed (a gap in the numbering) or moved (it no longer follows the
entry before it). Appends are serialised by an advisory lock, inside the caller's transaction,
so an entry exists exactly when the change it records was committed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.auth.secret import AUDIT_CHAIN, derive

GENESIS = bytes(32)
_APPEND_LOCK = 0x676D5F6175646974  # "gm_audit"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing that happened. `details` holds strings, integers, booleans and lists of them."""

    actor: str
    action: str
    tenant_id: uuid.UUID | None = None
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of walking the chain."""

    entries: int
    head_seq: int
    head_hash: str
    problem_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def canonical(at: datetime, entry: AuditEntry) -> bytes:
    """The bytes an entry's MAC covers (besides the previous MAC): stable across a database round trip."""
    return json.dumps(
        [at.astimezone(UTC).isoformat(timespec="microseconds"), entry.actor, entry.action,
         str(entry.tenant_id) if entry.tenant_id else None, entry.subject, dict(entry.details)],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode()


class AuditLog:
    """Appends to and verifies `audit_log`."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive(secret, AUDIT_CHAIN)

    def mac(self, prev_hash: bytes, at: datetime, entry: AuditEntry) -> bytes:
        return hmac.new(self._key, prev_hash + canonical(at, entry), hashlib.sha256).digest()

    async def append(self, conn: AsyncConnection, entry: AuditEntry) -> int:
        """Append `entry` in the transaction `conn` is in; its sequence number."""
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
        cur = await conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        last = await cur.fetchone()
        seq, prev = (last[0] + 1, bytes(last[1])) if last else (1, GENESIS)
        at = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, tenant_id, subject, details, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (seq, at, entry.actor, entry.action, entry.tenant_id, entry.subject,
             json.dumps(dict(entry.details), sort_keys=True), prev, self.mac(prev, at, entry)),
        )
        return int(seq)

    async def record(self, pool: AsyncConnectionPool, entry: AuditEntry) -> int:
        """Append `entry` in a transaction of its own."""
        async with pool.connection() as conn, conn.transaction():
            return await self.append(conn, entry)

    async def verify(self, conn: AsyncConnection) -> Verification:
        """Walk the whole chain; the first problem found, if any."""
        expected, prev, count = 1, GENESIS, 0
        async with conn.transaction(), conn.cursor(name="audit_walk") as cur:
            await cur.execute(
                "SELECT seq, at, actor, action, tenant_id, subject, details, prev_hash, hash FROM audit_log"
                " ORDER BY seq"
            )
            async for seq, at, actor, action, tenant, subject, details, prev_hash, mac in cur:
                entry = AuditEntry(actor, action, tenant, subject, details)
                problem = None
                if seq != expected:
                    problem = (f"entry {expected} is missing (removed)" if expected < seq
                               else f"entry {seq} is out of order")
                    seq = expected
                elif not hmac.compare_digest(self.mac(bytes(prev_hash), at, entry), bytes(mac)):
                    problem = f"entry {seq} was changed: its content does not match its MAC"
                elif bytes(prev_hash) != prev:
                    problem = (f"entry {seq} does not follow entry {seq - 1}: an entry was removed or"
                               " entries were re-ordered")
                if problem:
                    return Verification(count, expected - 1, prev.hex(), seq, problem)
                prev, expected, count = bytes(mac), expected + 1, count + 1
        return Verification(count, expected - 1, prev.hex())
