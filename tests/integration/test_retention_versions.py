"""What the archive's deletions do to the rest of the store: the analytics caches' version moves (so
no answer computed over the deleted rows is given again), and a row that arrives for the day while
it is archived stays online for the next run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.archive.layout import ArchiveError, load_manifest, manifest_key
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.runtime import Platform
from gamemetrics.services.analytics.queries import Conn
from gamemetrics.services.analytics.responses import tenant_version
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.services.retention.archiver import Archiver, DayJob
from gamemetrics.services.retention.online import OnlineDay, Readers, read_online_day
from gamemetrics.services.retention.restore import Restorer
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import day_of, history, store_history


def archiver(platform: Platform, settings: Settings, tmp_path: Path) -> Archiver:
    return Archiver(platform.pool, local_objects(tmp_path / "objects"), AuditLog(platform_secret(settings)),
                    part_rows=1000, zstd_level=3)


async def test_archiving_and_restoring_move_the_analytics_cache_version(
        platform: Platform, settings: Settings, write_key: CreatedKey, tmp_path: Path) -> None:
    await store_history(platform, settings, write_key, history([120, 10], players=3, per_player=4))
    store = AnalyticsStore(platform.pool, role=settings.analytics.db_role, answers=LocalMemo(100),
                           live=LocalMemo(10), statement_timeout_ms=5000, live_interval_s=1.0)
    t, g = write_key.tenant_id, write_key.game_id
    cold = day_of(120)
    computed: list[int] = []

    async def events_of_cold_day(conn: Conn) -> int:
        # Like the per-player breakdowns and `funnel`: an answer read from the events rows of the day.
        start = datetime(cold.year, cold.month, cold.day, tzinfo=UTC)
        cur = await conn.execute("SELECT count(*) FROM events WHERE tenant_id = %s AND game_id = %s"
                                 " AND event_time >= %s AND event_time < %s", (t, g, start, start + timedelta(days=1)))
        row = await cur.fetchone()
        computed.append(row[0] if row else -1)
        return computed[-1]

    async def asked() -> int:
        return await store.per_game(t, g, "cold-day-events", events_of_cold_day)

    assert await asked() == 12
    assert await asked() == 12 and computed == [12]  # the second answer is the cached one
    version = await tenant_version(store, t)

    report = await archiver(platform, settings, tmp_path).run()

    assert [d.rows_deleted for d in report.days] == [12]
    assert await asked() == 0 and computed == [12, 0]  # not the cached 12 of rows no longer online
    archived_version = await tenant_version(store, t)
    assert archived_version != version

    secret = platform_secret(settings)
    restorer = Restorer(platform.pool, local_objects(tmp_path / "objects"), Tombstones(secret), AuditLog(secret),
                        "test")
    assert [d.restored for d in await restorer.restore(g, day_of(130), day_of(110))] == [12]
    assert await asked() == 12 and computed == [12, 0, 12]
    assert await tenant_version(store, t) not in (version, archived_version)


async def test_a_row_that_arrives_while_its_day_is_archived_stays_online_for_the_next_run(
        platform: Platform, settings: Settings, write_key: CreatedKey, tmp_path: Path) -> None:
    await store_history(platform, settings, write_key, history([120], players=2, per_player=3))
    t, g, day = write_key.tenant_id, write_key.game_id, day_of(120)
    late = uuid.uuid4()
    run = archiver(platform, settings, tmp_path)

    async def read_then_a_late_event() -> OnlineDay:
        rows = await read_online_day(str(platform.pool.conninfo), t, g, day, 1000)
        async with platform.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO events (tenant_id, game_id, event_id, event_type, player_id, event_time, received_at,"
                " source, properties, context) VALUES (%s, %s, %s, 'level_start', 'player-9', %s, now(), 'import',"
                " '{}', '{}')", (t, g, late, datetime(day.year, day.month, day.day, 12, tzinfo=UTC)))
        return rows

    outcome = await run.archive_day(DayJob(t, g, day, 6), lambda name, job: None, read_then_a_late_event())

    assert (outcome.rows_archived, outcome.rows_deleted, outcome.partition_dropped) == (6, 6, False)
    async with platform.pool.connection() as conn:
        online = await (await conn.execute("SELECT event_id FROM events WHERE tenant_id = %s", (t,))).fetchall()
    assert online == [(late,)]
    again = await run.run()
    assert [(d.rows_archived, d.rows_deleted, d.partition_dropped) for d in again.days] == [(1, 1, True)]
    manifest = await load_manifest(local_objects(tmp_path / "objects"), manifest_key(t, g, day))
    assert manifest is not None and manifest.rows == 7 and len(manifest.files) == 2


async def test_a_run_s_reads_share_their_connections_and_a_read_that_fails_names_its_day(
        platform: Platform, settings: Settings, write_key: CreatedKey) -> None:
    await store_history(platform, settings, write_key, history([120, 121], players=2, per_player=3))
    t, g = write_key.tenant_id, write_key.game_id
    readers = Readers(str(platform.pool.conninfo))
    try:
        days = [await read_online_day(readers, t, g, day_of(ago), 1000) for ago in (120, 121)]
        assert [day.rows.num_rows for day in days] == [6, 6]
        assert days[0].ids_digest != days[1].ids_digest
        pids = []
        for _ in range(2):
            with readers.connection() as conn, conn.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone())
        assert pids[0] == pids[1]
        with pytest.raises(ArchiveError, match=f"could not read the online rows of game {g} on {day_of(300)}"):
            await read_online_day(readers, t, g, day_of(300), 1000)  # no partition: nothing was stored that day
        assert (await read_online_day(readers, t, g, day_of(120), 1000)).ids_digest == days[0].ids_digest
    finally:
        readers.close()
