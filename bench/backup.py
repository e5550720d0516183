"""Backup benchmark: the recovery time and recovery point of this mode's backups, for a given size.

    python bench/backup.py [--events 200000] [--days 5] [--after 20000] [--keep DIR]

It makes a database (embedded PostgreSQL in a temporary directory), loads --events events over
--days past days straight into the events table, then:

- backup: `backup create`'s work (a consistent pg_dump in custom format, uploaded to the object
  store with a copy of the archive manifests): seconds and bytes;
- raw: the same number of bytes written to the same object store, the machine's limit for
  moving the dump there;
- after: --after more events written once the backup is made (traffic goes on until the next one);
- restore: `backup restore`'s work into a new, empty database: the recovery time (RTO);
- loss: the events the restored database lacks beside the one backed up, which is what a
  disaster just before the next backup loses (the recovery point, RPO, in rows: every write since
  the last backup).

It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from retention import load  # bench/retention.py: the same loader of past days' events
from rich.console import Console
from rich.table import Table

from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres, client_program
from gamemetrics.migrations import upgrade
from gamemetrics.services.retention import backups


def events_in(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int((conn.execute("SELECT count(*) FROM events").fetchone() or (0,))[0])


async def measure(server: EmbeddedPostgres, url: str, data_dir: Path, after: int) -> dict[str, float]:
    objects = local_objects(data_dir / "objects")
    started = time.perf_counter()
    made = await backups.create(objects, url, client_program("pg_dump"))
    backup_s = time.perf_counter() - started

    raw = os.urandom(made.bytes)  # incompressible, as a compressed dump is
    started = time.perf_counter()
    await objects.put("raw/probe", raw)
    raw_s = time.perf_counter() - started
    await objects.delete("raw/probe")

    backed_up = events_in(url)
    if after:
        await load(url, after, 1, days_ago=50)
    source = events_in(url)

    target = server.ensure_database(f"restored_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(backups.ROLES)
    started = time.perf_counter()
    await backups.restore(objects, made.name, target, client_program("pg_restore"), True)
    restore_s = time.perf_counter() - started
    restored = events_in(target)
    return {"events": backed_up, "bytes": made.bytes, "backup_s": backup_s, "raw_s": raw_s,
            "restore_s": restore_s, "written_after": source - backed_up, "lost": source - restored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--after", type=int, default=20_000, help="Events written after the backup.")
    parser.add_argument("--keep", type=Path, help="Keep the data dir here (database, backups).")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="gm-bench-backup-"))
    server = EmbeddedPostgres(data_dir)
    try:
        url = server.ensure_database("bench_backup")
        upgrade(url)
        asyncio.run(load(url, args.events, args.days))
        figures = asyncio.run(measure(server, url, data_dir, args.after))
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    mib = figures["bytes"] / 2**20
    table = Table("measure", "value", title=f"backups, {figures['events']:,.0f} events over {args.days} days")
    table.add_row("dump size (MiB)", f"{mib:.1f}")
    table.add_row("backup create (s)", f"{figures['backup_s']:.2f}")
    table.add_row("backup create (MiB/s)", f"{mib / figures['backup_s']:.1f}")
    table.add_row("raw write of the same bytes to the store (MiB/s)", f"{mib / figures['raw_s']:.1f}")
    table.add_row("restore into an empty database, RTO (s)", f"{figures['restore_s']:.2f}")
    table.add_row("restore (events/s)", f"{figures['events'] / figures['restore_s']:,.0f}")
    table.add_row("events written after the backup", f"{figures['written_after']:,.0f}")
    table.add_row("events the restore lacks, RPO (rows)", f"{figures['lost']:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
