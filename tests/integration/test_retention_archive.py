"""The archive run on the real PostgreSQL, into a local directory and into S3Proxy: cold days become
verified Parquet, leave the database, and the analytics answers for them stay the same."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from gamemetrics.adapters.objects.store import ObjectStore, local_objects, s3_objects
from gamemetrics.archive.layout import load_manifest, manifest_key
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import StoreState
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.runtime import Platform
from gamemetrics.services.retention.archiver import RUN_LOCK, Archiver, RunBusy
from gamemetrics.services.retention.eraser import ArchiveEraser
from gamemetrics.services.retention.parts import read_day
from gamemetrics.services.retention.query import connect, fetch_archive, run_query
from gamemetrics.services.retention.restore import Restorer
from gamemetrics.services.retention.trim import Trimmer
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import answers, day_of, history, store_history
from tests.s3_server import S3Server


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return local_objects(tmp_path / "objects")
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_objects(server.settings(f"run-{uuid.uuid4().hex[:10]}"))


def archiver(platform: Platform, settings: Settings, objects: ObjectStore, part_rows: int = 1000) -> Archiver:
    return Archiver(platform.pool, objects, AuditLog(platform_secret(settings)), part_rows=part_rows, zstd_level=3)


async def rows(platform: Platform, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with platform.pool.connection() as conn:
        return await (await conn.execute(query, params)).fetchall()


async def test_cold_days_are_archived_verified_and_dropped_with_metrics_unchanged(
        platform: Platform, settings: Settings, write_key: CreatedKey, objects: ObjectStore, tmp_path: Path) -> None:
    sent = history([120, 100, 95, 10])
    await store_history(platform, settings, write_key, sent)
    cold = [day_of(ago) for ago in (120, 100, 95)]
    before = await answers(platform, write_key, [*cold, day_of(10)])
    online_before = {r[0]: r[1:] for r in await rows(
        platform, "SELECT event_id::text, player_id, event_type, properties::text, revenue_usd FROM events")}

    report = await archiver(platform, settings, objects, part_rows=20).run()

    assert [(d.job.day, d.state) for d in report.days] == [(day, "archived") for day in cold]
    assert all(d.partition_dropped for d in report.days)
    partitions = {r[0] for r in await rows(platform, "SELECT relname FROM pg_class WHERE relname LIKE 'events_2%%'")}
    assert not partitions & {f"events_{d:%Y%m%d}" for d in cold}
    assert f"events_{day_of(10):%Y%m%d}" in partitions
    assert (await rows(platform, "SELECT count(*) FROM events"))[0][0] == 30
    assert await answers(platform, write_key, [*cold, day_of(10)]) == before

    # Every archived row is the one that was online, read back with pyarrow from the store's files.
    archived: dict[str, tuple[Any, ...]] = {}
    for day in cold:
        manifest = await load_manifest(objects, manifest_key(write_key.tenant_id, write_key.game_id, day))
        assert manifest is not None and manifest.rows == 30 and len(manifest.files) == 2
        for file in manifest.files:
            assert f"tenant_id={write_key.tenant_id}/game_id={write_key.game_id}/dt={day}/part-" in file.key
            local = tmp_path / "part.parquet"
            await objects.download(file.key, local)
            for row in pq.read_table(local).to_pylist():
                archived[row["event_id"]] = (row["player_id"], row["event_type"], row["properties"],
                                             row["revenue_usd"])
    expected = {k: v for k, v in online_before.items()
                if k in {e["event_id"] for e in sent[:90]}}
    assert archived == expected

    # A second run finds nothing to do; the audit log holds each day and both runs.
    assert (await archiver(platform, settings, objects).run()).days == []
    actions = [r[0] for r in await rows(platform, "SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["retention.day_archived"] * 3 + ["retention.run"] * 2
    assert (await AuditLog(platform_secret(settings)).verify(await platform.pool.getconn())).ok


async def test_dry_run_changes_nothing_and_a_held_lock_refuses(
        platform: Platform, settings: Settings, write_key: CreatedKey, tmp_path: Path) -> None:
    await store_history(platform, settings, write_key, history([200], players=2, per_player=2))
    objects = local_objects(tmp_path / "objects")
    report = await archiver(platform, settings, objects).run(dry_run=True)
    assert [(d.job.day, d.state, d.job.online_rows) for d in report.days] == [(day_of(200), "planned", 4)]
    assert await objects.list() == []
    async with platform.pool.connection() as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK,))
        with pytest.raises(RunBusy, match="another retention run"):
            await archiver(platform, settings, objects).run()
        await holder.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK,))
    assert (await rows(platform, "SELECT count(*) FROM events"))[0][0] == 4


async def test_a_per_game_policy_keeps_days_online(
        platform: Platform, settings: Settings, write_key: CreatedKey, tmp_path: Path) -> None:
    await store_history(platform, settings, write_key, history([100, 40], players=1, per_player=1))
    async with platform.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO retention_policies (tenant_id, game_id, events_online_days, archive_days, dead_letter_days,"
            " notification_days) VALUES (%s, %s, 30, 365, 30, 180)", (write_key.tenant_id, write_key.game_id))
    report = await archiver(platform, settings, local_objects(tmp_path / "o")).run()
    assert sorted(d.job.day for d in report.days) == [day_of(100), day_of(40)]


async def test_an_erasure_rewrites_the_files_holding_the_player(
        platform: Platform, settings: Settings, write_key: CreatedKey, objects: ObjectStore) -> None:
    sent = history([120, 100], players=4, per_player=5)
    await store_history(platform, settings, write_key, sent)
    await archiver(platform, settings, objects, part_rows=6).run()
    key = manifest_key(write_key.tenant_id, write_key.game_id, day_of(120))
    before = await load_manifest(objects, key)
    assert before is not None
    eraser = ArchiveEraser(platform.pool, objects, zstd_level=3)
    request = ErasureRequest(uuid.uuid4(), write_key.tenant_id, write_key.game_id, "player-1", "test",
                             datetime.now(UTC))

    states = await eraser.erase(request, b"h" * 32)

    assert states == {"archive": StoreState("erased", rows=10)}
    remaining: list[str] = []
    for ago in (120, 100):
        manifest = await load_manifest(objects, manifest_key(write_key.tenant_id, write_key.game_id, day_of(ago)))
        assert manifest is not None and manifest.rows == 15
        remaining += (await read_day(objects, manifest))["player_id"].to_pylist()
    assert sorted(set(remaining)) == ["player-0", "player-2", "player-3"]
    after = await load_manifest(objects, key)
    assert after is not None
    rewritten = {f.key for f in before.files} - {f.key for f in after.files}
    assert rewritten and not any([await objects.exists(k) for k in rewritten])  # the old files are gone
    stored = {info.key for info in await objects.list(key.rsplit("/", 1)[0] + "/")}
    assert stored == {f.key for f in after.files} | {key}
    assert (await rows(platform, "SELECT rows FROM archived_days ORDER BY day")) == [(15,), (15,)]
    # Asked again (a redelivered request), nothing is left to remove.
    assert await eraser.erase(request, b"h" * 32) == {"archive": StoreState("erased", rows=0)}


async def test_duckdb_queries_and_a_restore_brings_days_back_once_without_erased_players(
        platform: Platform, settings: Settings, write_key: CreatedKey, objects: ObjectStore, tmp_path: Path) -> None:
    sent = history([120, 100], players=4, per_player=5)
    await store_history(platform, settings, write_key, sent)
    online = sorted(r[0] for r in await rows(platform, "SELECT event_id::text FROM events"))
    await archiver(platform, settings, objects, part_rows=6).run()

    files = await fetch_archive(objects, tmp_path / "scratch", tenant_id=write_key.tenant_id)
    db = connect(files)
    counted = run_query(db, "SELECT dt, count(*) AS n, sum(revenue_usd) AS gross FROM events GROUP BY dt ORDER BY dt")
    assert counted.columns == ["dt", "n", "gross"]
    assert [(r[0], r[1]) for r in counted.rows] == [(day_of(120), 20), (day_of(100), 20)]
    assert sorted(r[0] for r in run_query(db, "SELECT event_id FROM events").rows) == online
    assert run_query(db, "SELECT DISTINCT game_id FROM events").rows == [(str(write_key.game_id),)]
    with pytest.raises(ValueError, match="nowhere"):
        run_query(db, "SELECT * FROM nowhere")

    secret = platform_secret(settings)
    tombstones = Tombstones(secret)
    async with platform.pool.connection() as conn:
        await conn.execute("INSERT INTO erased_players (player_hash, tenant_id, game_id) VALUES (%s, %s, %s)",
                           (tombstones.player_hash(write_key.tenant_id, write_key.game_id, "player-2"),
                            write_key.tenant_id, write_key.game_id))
    restorer = Restorer(platform.pool, objects, tombstones, AuditLog(secret), "test")
    first = await restorer.restore(write_key.game_id, day_of(130), day_of(90))
    assert [(d.restored, d.already_online, d.erased_skipped) for d in first] == [(15, 0, 5), (15, 0, 5)]
    again = await restorer.restore(write_key.game_id, day_of(130), day_of(90))
    assert [(d.restored, d.already_online) for d in again] == [(0, 15), (0, 15)]
    back = await rows(platform, "SELECT event_id::text, player_id, properties::text FROM events ORDER BY 1")
    assert len(back) == 30 and "player-2" not in {r[1] for r in back}
    by_id = {e["event_id"]: e for e in sent}
    assert all(json.loads(r[2]) == by_id[r[0]]["properties"] for r in back)


async def test_runs_trim_dead_letters_notifications_the_bus_and_expired_archives(
        platform: Platform, settings: Settings, write_key: CreatedKey, tmp_path: Path) -> None:
    await store_history(platform, settings, write_key, history([40], players=1, per_player=2))
    t, g = write_key.tenant_id, write_key.game_id
    async with platform.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO retention_policies (tenant_id, game_id, events_online_days, archive_days, dead_letter_days,"
            " notification_days) VALUES (%s, NULL, 30, 35, 10, 20)", (t,))
        for n, age in enumerate((11, 9)):
            await conn.execute(
                "INSERT INTO dead_letters (tenant_id, game_id, source_topic, source_partition, source_offset, reason,"
                " payload, created_at) VALUES (%s, %s, 't', 0, %s, 'bad', '', now() - make_interval(days => %s))",
                (t, g, n, age))
            await conn.execute(
                "INSERT INTO outbox (tenant_id, message_id, channel, recipient, body, created_at)"
                " VALUES (%s, %s, 'email', 'a@b.c', 'hi', now() - make_interval(days => %s))",
                (t, uuid.uuid4(), age * 2 + 1))
        for reason, age in (("rate_limited", 16), ("revoked_key", 14)):
            await conn.execute(
                "INSERT INTO ingest_refusals (tenant_id, game_id, hour, reason, events, requests)"
                " VALUES (%s, %s, date_trunc('hour', now()) - make_interval(days => %s), %s, 3, 1)",
                (t, g, age, reason))
        for kid, retired_days_ago in (("old", 31), ("recent", 29)):
            await conn.execute(
                "INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_key, superseded_at, retired_at)"
                " VALUES (%s, 'ES256', '{}', '', now() - make_interval(days => %s + 1),"
                " now() - make_interval(days => %s))", (kid, retired_days_ago, retired_days_ago))
    objects = local_objects(tmp_path / "objects")
    trimmer = Trimmer(platform.pool, objects, AuditLog(platform_secret(settings)), platform.bus,
                      bus_retention_hours=0.0, actor="test", refusal_days=15)
    run = Archiver(platform.pool, objects, AuditLog(platform_secret(settings)), part_rows=100, zstd_level=3,
                   trimmer=trimmer)

    report = await run.run()

    assert [d.state for d in report.days] == ["archived"]
    assert report.trimmed is not None
    assert (report.trimmed.dead_letters, report.trimmed.notifications, report.trimmed.archived_days_expired,
            report.trimmed.archive_files_deleted) == (1, 1, 1, 1)
    assert report.trimmed.bus_messages >= 2  # the raw messages the processor has read
    assert report.trimmed.signing_keys == 1
    assert report.trimmed.ingest_refusals == 1
    assert await rows(platform, "SELECT reason FROM ingest_refusals") == [("revoked_key",)]
    assert await rows(platform, "SELECT kid FROM signing_keys WHERE retired_at IS NOT NULL") == [("recent",)]
    assert await rows(platform, "SELECT source_offset FROM dead_letters") == [(1,)]
    assert len(await rows(platform, "SELECT 1 FROM outbox")) == 1
    assert await objects.list() == [] and await rows(platform, "SELECT 1 FROM archived_days") == []
    actions = [r[0] for r in await rows(platform, "SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["retention.day_archived", "retention.archive_expired", "retention.trimmed", "retention.run"]
