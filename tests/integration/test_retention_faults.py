"""A retention run killed at each step and run again through the CLI: every event ends in exactly
one place (online or archived). A corrupted archive file is found before anything is deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from signal import SIGKILL

import pytest

from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.archive.layout import load_manifest, manifest_key
from gamemetrics.runtime import Platform
from gamemetrics.services.retention.parts import read_day
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import day_of, history, store_history

pytestmark = pytest.mark.timeout(180)

# A run in a process of its own that kills itself (SIGKILL: no cleanup, no rollback in Python) when
# the named step of its second day completes.
_KILLED_RUN = """
import asyncio, os, signal, sys
from gamemetrics.adapters.objects.store import make_objects
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.services.retention.archiver import Archiver
from gamemetrics.settings import Settings

kill_at, seen = sys.argv[1], []

def step(name, job):
    seen.append(name)
    if name == kill_at and seen.count(name) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    settings = Settings()
    pool = await open_pool(settings.database_url, max_size=2, name="killed-run")
    archiver = Archiver(pool, make_objects(settings.objects, settings.data_dir),
                        AuditLog(platform_secret(settings)), part_rows=7, zstd_level=3)
    await archiver.run(step=step)

asyncio.run(main())
"""


def environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, "GAMEMETRICS_DATABASE_URL": str(settings.database_url),
            "GAMEMETRICS_DATA_DIR": str(settings.data_dir), "GAMEMETRICS_RETENTION_PART_ROWS": "7", "COLUMNS": "220"}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gamemetrics.cli", *args], env=environment(settings),
                          capture_output=True, text=True, timeout=120)


async def placements(platform: Platform, settings: Settings, key: CreatedKey, ids: set[str]) -> dict[str, int]:
    """How many places (online rows + archived rows the manifests list) hold each event id."""
    counts = dict.fromkeys(ids, 0)
    async with platform.pool.connection() as conn:
        for (event_id,) in await (await conn.execute("SELECT event_id::text FROM events")).fetchall():
            counts[event_id] += 1
    objects = local_objects(settings.data_dir / "objects")
    for ago in (150, 140):
        manifest = await load_manifest(objects, manifest_key(key.tenant_id, key.game_id, day_of(ago)))
        if manifest:
            for event_id in (await read_day(objects, manifest))["event_id"].to_pylist():
                counts[event_id] += 1
    return counts


@pytest.mark.parametrize("kill_at", ["uploaded", "manifest", "deleted"])
async def test_a_run_killed_at_any_step_and_run_again_leaves_every_event_in_one_place(
        platform: Platform, settings: Settings, write_key: CreatedKey, kill_at: str) -> None:
    sent = history([150, 140], players=4, per_player=5)
    await store_history(platform, settings, write_key, sent)
    ids = {e["event_id"] for e in sent}

    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, kill_at], env=environment(settings),
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -SIGKILL, killed.stderr
    counts = await placements(platform, settings, write_key, ids)
    assert set(counts.values()) <= {1, 2} and 0 not in counts.values()  # nothing lost, even now

    rerun = cli(settings, "retention", "run", "--json")
    assert rerun.returncode == 0, rerun.stderr
    days = json.loads(rerun.stdout)["days"]
    assert all(d["state"] == "archived" for d in days), days
    assert await placements(platform, settings, write_key, ids) == dict.fromkeys(ids, 1)
    async with platform.pool.connection() as conn:
        assert (await (await conn.execute("SELECT count(*) FROM events")).fetchone() or [None])[0] == 0
    # No file outside the manifests is left behind: parts a killed run uploaded were written again.
    objects = local_objects(settings.data_dir / "objects")
    listed = set()
    for ago in (150, 140):
        manifest = await load_manifest(objects, manifest_key(write_key.tenant_id, write_key.game_id, day_of(ago)))
        assert manifest is not None
        listed |= {file.key for file in manifest.files}
    assert {info.key for info in await objects.list() if info.key.endswith(".parquet")} == listed
    assert cli(settings, "audit", "verify").returncode == 0


async def test_a_corrupted_file_is_found_before_anything_is_deleted(
        platform: Platform, settings: Settings, write_key: CreatedKey) -> None:
    sent = history([150, 140], players=4, per_player=5)
    await store_history(platform, settings, write_key, sent)
    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, "manifest"], env=environment(settings),
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -SIGKILL, killed.stderr
    # The second day's manifest is written, its rows still online; one of its files is then damaged.
    objects = local_objects(settings.data_dir / "objects")
    manifest = await load_manifest(objects, manifest_key(write_key.tenant_id, write_key.game_id, day_of(140)))
    assert manifest is not None
    damaged = manifest.files[1].key
    path = settings.data_dir / "objects" / damaged
    path.write_bytes(path.read_bytes()[:-40] + b"\0" * 40)

    rerun = cli(settings, "retention", "run", "--json")
    assert rerun.returncode == 1
    (day,) = json.loads(rerun.stdout)["days"]
    assert day["state"] == "failed" and damaged in day["error"] and "corrupted" in day["error"]
    async with platform.pool.connection() as conn:
        online = (await (await conn.execute("SELECT count(*) FROM events")).fetchone() or [None])[0]
        failures = await (await conn.execute(
            "SELECT details->>'error' FROM audit_log WHERE action = 'retention.day_failed'")).fetchall()
    assert online == 20  # the damaged day's rows are all still online
    assert len(failures) == 1 and damaged in failures[0][0]


async def test_the_cli_sets_policies_runs_queries_and_restores(
        platform: Platform, settings: Settings, write_key: CreatedKey) -> None:
    bad = cli(settings, "retention", "set", "--game", str(write_key.game_id), "--events-online-days", "900")
    assert bad.returncode == 1 and "archive_days (730) must be at least events_online_days (900)" in bad.stderr
    done = cli(settings, "retention", "set", "--game", str(write_key.game_id), "--events-online-days", "30")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tenant_id"] == str(write_key.tenant_id)
    shown = cli(settings, "retention", "show", "--json")
    assert [json.loads(line)["events_online_days"] for line in shown.stdout.splitlines()] == [90, 30]

    await store_history(platform, settings, write_key, history([40, 20], players=2, per_player=3))
    run = cli(settings, "retention", "run")
    assert run.returncode == 0 and "archived" in run.stdout, run.stderr

    counted = cli(settings, "archive", "query", "SELECT dt, count(*) AS n FROM events GROUP BY dt", "--json")
    assert counted.returncode == 0, counted.stderr
    assert [json.loads(line) for line in counted.stdout.splitlines()] == [{"dt": str(day_of(40)), "n": 6}]
    wrong = cli(settings, "archive", "query", "SELECT nothing FROM events", "--csv")
    assert wrong.returncode == 1 and "nothing" in wrong.stderr

    for restored in ("6", "0"):
        back = cli(settings, "archive", "restore", "--game", str(write_key.game_id), "--from", str(day_of(60)),
                   "--to", str(day_of(30)))
        assert back.returncode == 0, back.stderr
        assert restored in back.stdout.splitlines()[-2]
    async with platform.pool.connection() as conn:
        assert (await (await conn.execute("SELECT count(*) FROM events")).fetchone() or [None])[0] == 12
