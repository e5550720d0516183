"""The audit chain: intact, it verifies; an entry changed, removed or moved is named; the table
refuses updates and deletes from anyone who does not first switch its triggers off."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.runtime import Platform

SECRET = b"s" * 48


async def _fill(platform: Platform, log: AuditLog, n: int) -> None:
    tenant = uuid.uuid4()
    for i in range(n):
        await log.record(platform.pool, AuditEntry("client:c1", f"thing.{i}", tenant, f"s{i}", {"n": i, "x": ["a"]}))


async def _verify(platform: Platform, log: AuditLog):  # type: ignore[no-untyped-def]
    async with platform.pool.connection() as conn:
        return await log.verify(conn)


def _tamper(url: str, sql: str) -> None:
    """As a superuser who switches the append-only triggers off for the session."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)


async def test_an_intact_chain_verifies(platform: Platform) -> None:
    log = AuditLog(SECRET)
    await _fill(platform, log, 5)
    report = await _verify(platform, log)
    assert report.ok and report.entries == report.head_seq == 5
    assert not (await _verify(platform, AuditLog(b"t" * 48))).ok, "another secret must not verify the chain"


async def test_updates_and_deletes_are_refused(platform: Platform, database_url: str) -> None:
    await _fill(platform, AuditLog(SECRET), 2)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)


@pytest.mark.parametrize(("tampering", "seq", "words"), [
    ("UPDATE audit_log SET details = '{\"n\": 99, \"x\": [\"a\"]}' WHERE seq = 3", 3, "changed"),
    ("UPDATE audit_log SET at = at + interval '1 second' WHERE seq = 4", 4, "changed"),
    ("DELETE FROM audit_log WHERE seq = 2", 2, "missing"),
    ("DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2", 2, "does not follow"),
    ("UPDATE audit_log SET seq = -1 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4;"
     " UPDATE audit_log SET seq = 4 WHERE seq = -1", 3, "does not follow"),
])
async def test_tampering_is_named(platform: Platform, database_url: str, tampering: str, seq: int,
                                  words: str) -> None:
    log = AuditLog(SECRET)
    await _fill(platform, log, 6)
    _tamper(database_url, tampering)
    report = await _verify(platform, log)
    assert not report.ok
    assert report.problem_seq == seq, report.problem
    assert words in (report.problem or "")
