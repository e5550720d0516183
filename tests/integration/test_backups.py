"""Restore drill: data, a backup, a new empty database, the restore; every table's row count and the
analytics answers are the same, and a restore into a database that is not empty is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.runtime import Platform, connect
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.integration.retention_fixtures import answers, day_of, history, store_history

pytestmark = pytest.mark.timeout(180)


def cli(settings: Settings, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "gamemetrics.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]


async def test_a_backup_restores_into_an_empty_database_with_every_row_and_answer(
        platform: Platform, settings: Settings, write_key: CreatedKey, pg_server: EmbeddedPostgres) -> None:
    await store_history(platform, settings, write_key, history([100, 30, 3], players=3, per_player=3))
    assert settings.database_url
    days = [day_of(100), day_of(30), day_of(3)]
    before, rows_before = await answers(platform, write_key, days), counts(settings.database_url)

    made = cli(settings, settings.database_url, "backup", "create")
    assert made.returncode == 0, made.stderr
    name = json.loads(made.stdout)["name"]
    listed = cli(settings, settings.database_url, "backup", "list")
    assert name in [json.loads(line)["name"] for line in listed.stdout.splitlines()]

    empty = f"gm_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{empty}"')
    target = pg_server.url(empty)
    try:
        restored = cli(settings, target, "backup", "restore", name)
        assert restored.returncode == 0, restored.stderr
        print(f"restore took {json.loads(restored.stdout)['seconds']} s")
        rows_after = counts(target)
        # The backup's own entry is written after its dump; the restore's entry is the one row more.
        assert rows_after == {**rows_before, "audit_log": rows_before["audit_log"] + 1}
        assert cli(settings, target, "audit", "verify").returncode == 0
        async with connect(settings, target, name="restored") as restored_platform:
            assert await answers(restored_platform, write_key, days) == before
        again = cli(settings, target, "backup", "restore", name)
        assert again.returncode == 1 and "not empty" in again.stderr
        missing = cli(settings, target, "backup", "restore", "19990101T000000Z")
        assert missing.returncode == 1 and name in missing.stderr
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')
