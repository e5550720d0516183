"""Backups of the store: a consistent `pg_dump` (custom format) and a copy of the archive's
manifests, in object storage under `backups/<UTC time>/`; restored into an empty database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gamemetrics.archive.layout import MANIFEST, TABLE
from gamemetrics.ports.objects import Objects

PREFIX = "backups/"
DUMP = "store.dump"
MANIFESTS = "manifests.json"
# The roles the schema's policies and grants name: they live in the cluster, not in a dump.
ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gamemetrics_app') THEN
        CREATE ROLE gamemetrics_app NOLOGIN NOINHERIT NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gamemetrics_trusted') THEN
        CREATE ROLE gamemetrics_trusted NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;
GRANT gamemetrics_app TO CURRENT_USER;
GRANT gamemetrics_trusted TO CURRENT_USER;
"""


class BackupError(Exception):
    """A backup that could not be made or restored; the message says why."""


@dataclass(frozen=True, slots=True)
class Backup:
    name: str
    bytes: int
    created: datetime


def _run(program: Path, *args: str) -> None:
    done = subprocess.run([str(program), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{program.name} failed: {done.stderr.strip() or done.returncode}")


async def create(objects: Objects, url: str, pg_dump: Path, *, now: datetime | None = None) -> Backup:
    """Dump the database and copy the manifests; the backup's name is its UTC time."""
    name = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    manifests = {info.key: (await objects.get(info.key)).decode()
                 for info in await objects.list(f"{TABLE}/") if info.key.endswith("/" + MANIFEST)}
    with tempfile.TemporaryDirectory(prefix="gm-backup-") as scratch:
        dump = Path(scratch) / DUMP
        await asyncio.to_thread(_run, pg_dump, "--format=custom", "--no-owner", f"--file={dump}", f"--dbname={url}")
        await objects.put(f"{PREFIX}{name}/{DUMP}", dump)
        size = dump.stat().st_size
    await objects.put(f"{PREFIX}{name}/{MANIFESTS}", json.dumps(manifests, sort_keys=True).encode())
    return Backup(name, size, now or datetime.now(UTC))


async def listed(objects: Objects) -> list[Backup]:
    """Every backup, oldest first."""
    return [Backup(info.key.split("/")[1], info.size, info.modified)
            for info in await objects.list(PREFIX) if info.key.endswith("/" + DUMP)]


async def restore(objects: Objects, name: str, url: str, pg_restore: Path, empty: bool) -> int:
    """Restore backup `name` into the empty database at `url`; the dump's size."""
    key = f"{PREFIX}{name}/{DUMP}"
    if not await objects.exists(key):
        names = ", ".join(b.name for b in await listed(objects)) or "none"
        raise BackupError(f"no backup {name!r} (backups: {names})")
    if not empty:
        raise BackupError("the database is not empty: restore into a new, empty database")
    with tempfile.TemporaryDirectory(prefix="gm-restore-") as scratch:
        dump = Path(scratch) / DUMP
        await objects.download(key, dump)
        await asyncio.to_thread(_run, pg_restore, "--exit-on-error", "--no-owner", f"--dbname={url}", str(dump))
        return dump.stat().st_size
