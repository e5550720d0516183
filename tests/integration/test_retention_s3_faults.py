"""Archive runs into S3Proxy through a proxy that injects faults: a run that meets passing faults
(500/503 answers, dropped connections, lost answers, slow answers) retries and completes; one that
meets an outage fails its days without deleting anything online, and the next run completes.
Either way every event ends in exactly one place."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gamemetrics.adapters.objects.store import ObjectStore, s3_objects
from gamemetrics.archive.layout import load_manifest, manifest_key
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.runtime import Platform
from gamemetrics.services.retention.archiver import Archiver
from gamemetrics.services.retention.parts import read_day
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import day_of, history, store_history
from tests.s3_faults import Fault, FaultProxy, fault_proxy
from tests.s3_server import S3Server

pytestmark = pytest.mark.timeout(180)
DAYS = (150, 140)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    with fault_proxy(s3_server.endpoint) as running:
        yield running


def stores(s3_server: S3Server, proxy: FaultProxy) -> tuple[ObjectStore, ObjectStore]:
    """The bucket through the faulty proxy (retrying for 2 s at most), and straight (to check it)."""
    settings = s3_server.settings(f"faults-{uuid.uuid4().hex[:10]}")
    return (s3_objects(settings.model_copy(update={"s3_endpoint_url": proxy.endpoint, "s3_retry_seconds": 2.0})),
            s3_objects(settings))


async def placements(platform: Platform, objects: ObjectStore, key: CreatedKey, ids: set[str]) -> dict[str, int]:
    """How many places (online rows, archived rows the manifests list) hold each event id."""
    counts = dict.fromkeys(ids, 0)
    async with platform.pool.connection() as conn:
        for (event_id,) in await (await conn.execute("SELECT event_id::text FROM events")).fetchall():
            counts[event_id] += 1
    for ago in DAYS:
        manifest = await load_manifest(objects, manifest_key(key.tenant_id, key.game_id, day_of(ago)))
        if manifest:
            for event_id in (await read_day(objects, manifest))["event_id"].to_pylist():
                counts[event_id] += 1
    return counts


def archiver(platform: Platform, settings: Settings, objects: ObjectStore) -> Archiver:
    return Archiver(platform.pool, objects, AuditLog(platform_secret(settings)), part_rows=5, zstd_level=3)


async def test_a_run_that_meets_passing_faults_retries_and_completes(
        platform: Platform, settings: Settings, write_key: CreatedKey, s3_server: S3Server,
        proxy: FaultProxy) -> None:
    sent = history(list(DAYS), players=3, per_player=4)
    await store_history(platform, settings, write_key, sent)
    faulty, straight = stores(s3_server, proxy)

    def plan(method: str, path: str, n: int) -> Fault | None:
        if n % 4 == 1:
            return Fault("status", 503 if n % 8 == 1 else 500)
        if method == "PUT" and n % 4 == 2:
            return Fault("lost")  # stored, but the answer never arrives: the retry stores it again
        if method == "GET" and n % 4 == 3:
            return Fault("drop")
        return Fault("slow", delay=0.2) if n % 4 == 0 else None

    proxy.plan = plan
    report = await archiver(platform, settings, faulty).run()

    assert [(d.state, d.rows_deleted) for d in report.days] == [("archived", 12), ("archived", 12)], report
    assert {"status", "lost", "drop", "slow"} <= set(proxy.injected)
    ids = {e["event_id"] for e in sent}
    assert await placements(platform, straight, write_key, ids) == dict.fromkeys(ids, 1)


async def test_an_outage_fails_the_days_without_deleting_and_the_next_run_completes(
        platform: Platform, settings: Settings, write_key: CreatedKey, s3_server: S3Server,
        proxy: FaultProxy) -> None:
    sent = history(list(DAYS), players=3, per_player=4)
    await store_history(platform, settings, write_key, sent)
    faulty, straight = stores(s3_server, proxy)
    ids = {e["event_id"] for e in sent}

    # The first day's parts are stored, then the store answers 503 to everything for good: its
    # manifest is never written (or its read-back never done), so nothing may leave the database.
    proxy.plan = lambda method, path, n: Fault("status", 503) if sum(proxy.seen.values()) > 6 else None
    failed = await archiver(platform, settings, faulty).run()

    assert [d.state for d in failed.days] == ["failed", "failed"]
    assert all("503" in (d.error or "") or "SlowDown" in (d.error or "") for d in failed.days), failed.days
    async with platform.pool.connection() as conn:
        assert (await (await conn.execute("SELECT count(*) FROM events")).fetchone() or [0])[0] == len(sent)
        audit = await (await conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'retention.day_failed'")).fetchone()
    assert audit == (2,)
    assert set((await placements(platform, straight, write_key, ids)).values()) <= {1, 2}

    proxy.plan = lambda method, path, n: None
    again = await archiver(platform, settings, faulty).run()

    assert [(d.state, d.rows_deleted) for d in again.days] == [("archived", 12), ("archived", 12)]
    assert await placements(platform, straight, write_key, ids) == dict.fromkeys(ids, 1)
