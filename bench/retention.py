"""Retention benchmark: archive rows/s of the retention run beside the raw pyarrow write rate of
the same rows to the same storage, and a DuckDB query over the archived events.

    python bench/retention.py [--events 200000] [--days 10] [--keep DIR]

It makes a database (embedded PostgreSQL in a temporary directory), loads a game's events of
--days past days straight into the events table, then:

- raw: the same rows, read once from the store, written with pyarrow (zstd) to files in a local
  directory: the machine's limit for turning these rows into Parquet on this storage;
- archive: `Archiver.run` over the same days: read from PostgreSQL, write, upload, read back and
  verify each part, write the manifest, delete the rows and drop the partitions;
- query: DuckDB over the archived files (a count and revenue per day and event type), seconds.

Beside each wall time it prints the processor time spent (this process's threads and the
store's processes): on a shared machine the wall times follow the load, the processor times
far less. The raw read (the same rows read from the store into Arrow, as the archive reads
them) is printed too: the archive does it, the raw write does not. The archive objects live in
a local directory under the run's data dir. It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.audit import AuditLog
from gamemetrics.migrations import upgrade
from gamemetrics.services.retention.archiver import Archiver
from gamemetrics.services.retention.online import read_online
from gamemetrics.services.retention.query import connect, fetch_archive, run_query

LOAD = """
INSERT INTO events (tenant_id, game_id, event_id, event_type, event_name, player_id, session_id, event_time,
                    received_at, source, platform, os, app_version, country, is_new_player, revenue_usd,
                    properties, context)
SELECT %(tenant)s, %(game)s, gen_random_uuid(),
       (ARRAY['level_start', 'level_end', 'purchase', 'ad_impression'])[1 + n %% 4], NULL,
       'player-' || (n %% 5000), 's-' || (n %% 20000), %(start)s + make_interval(secs => n * 86400.0 / %(per_day)s),
       %(start)s + make_interval(secs => n * 86400.0 / %(per_day)s + 1), 'import', 'ios', 'iOS 18', '1.4.2', 'DE',
       n %% 97 = 0, CASE WHEN n %% 4 = 2 THEN 4.99 END,
       jsonb_build_object('level', n %% 50, 'score', n * 7, 'item', 'sword-' || (n %% 30)),
       jsonb_build_object('device', 'iPhone15,2', 'locale', 'de_DE')
FROM generate_series(0, %(per_day)s - 1) AS n
"""


async def load(url: str, events: int, days: int, *, days_ago: int = 100) -> tuple[uuid.UUID, uuid.UUID]:
    """A tenant and game with `events` events over `days` days, the newest `days_ago` days ago."""
    tenant, game = uuid.uuid4(), uuid.uuid4()
    pool = await open_pool(url, max_size=2, name="bench-load")
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
        await conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'bench')", (game, tenant))
        await conn.execute(
            "INSERT INTO retention_policies (tenant_id, events_online_days, archive_days, dead_letter_days,"
            " notification_days) VALUES (%s, 30, 3650, 30, 180)", (tenant,))
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for d in range(days):
            start = today - timedelta(days=days_ago + d)
            await conn.execute("SELECT gm_ensure_event_partition(%s)", (start.date(),))
            await conn.execute(LOAD, {"tenant": tenant, "game": game, "start": start, "per_day": events // days})
        # Days this old have long been vacuumed: their rows' hint bits are set, as the archive finds them.
        await conn.commit()
        await conn.set_autocommit(True)
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("CHECKPOINT")
    await pool.close()
    # A backend's processor time counts for the server once it has ended: let the loading one end first.
    await asyncio.sleep(1)
    return tenant, game


def cpu_seconds(data_dir: Path) -> tuple[float, float]:
    """Processor seconds so far of this process, and of the store's (its processes, live and ended)."""
    postmaster = psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
    own = postmaster.cpu_times()
    store = own.user + own.system + own.children_user + own.children_system
    for child in postmaster.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        store += times.user + times.system
    return time.process_time(), store


def spent(since: tuple[float, float], data_dir: Path) -> tuple[float, float]:
    now = cpu_seconds(data_dir)
    return now[0] - since[0], now[1] - since[1]


async def measure(url: str, data_dir: Path, tenant: uuid.UUID, game: uuid.UUID, days: int) -> dict[str, Any]:
    pool = await open_pool(url, max_size=2, name="bench-retention")
    today = datetime.now(UTC).date()
    raw_dir = data_dir / "raw"
    raw_dir.mkdir()
    tables = []
    started, cpu = time.perf_counter(), cpu_seconds(data_dir)
    for d in range(days):
        tables.append(await read_online(url, tenant, game, today - timedelta(days=100 + d)))
    read_s, read_cpu = time.perf_counter() - started, spent(cpu, data_dir)
    rows = sum(t.num_rows for t in tables)
    started, cpu = time.perf_counter(), cpu_seconds(data_dir)
    for n, table in enumerate(tables):
        pq.write_table(table, raw_dir / f"part-{n:04d}.parquet", compression="zstd", compression_level=3)
    raw_s, raw_cpu = time.perf_counter() - started, spent(cpu, data_dir)

    objects = local_objects(data_dir / "objects")
    archiver = Archiver(pool, objects, AuditLog(b"b" * 48), part_rows=1_000_000, zstd_level=3)
    started, cpu = time.perf_counter(), cpu_seconds(data_dir)
    report = await archiver.run()
    archive_s, archive_cpu = time.perf_counter() - started, spent(cpu, data_dir)
    assert not report.failed and sum(d.rows_deleted for d in report.days) == rows, report
    await pool.close()

    started = time.perf_counter()
    files = await fetch_archive(objects, data_dir / "scratch", tenant_id=tenant)
    fetch_s = time.perf_counter() - started
    db = connect(files)
    started = time.perf_counter()
    result = run_query(db, "SELECT dt, event_type, count(*), sum(revenue_usd) FROM events GROUP BY ALL ORDER BY ALL")
    query_s = time.perf_counter() - started
    assert sum(row[2] for row in result.rows) == rows
    return {"rows": rows, "read_s": read_s, "read_cpu": read_cpu, "raw_s": raw_s, "raw_cpu": raw_cpu,
            "archive_s": archive_s, "archive_cpu": archive_cpu, "fetch_s": fetch_s, "query_s": query_s,
            "archive_bytes": sum(f.stat().st_size for f in files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="Keep the data dir here (database and archive).")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="gm-bench-retention-"))
    server = EmbeddedPostgres(data_dir)
    try:
        url = server.ensure_database("bench_retention")
        upgrade(url)
        tenant, game = asyncio.run(load(url, args.events, args.days))
        figures = asyncio.run(measure(url, data_dir, tenant, game, args.days))
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    rows = figures["rows"]
    table = Table("measure", "rows/s", "processor s (this process + store)",
                  title=f"retention, {rows:,.0f} events over {args.days} days")
    for name, key in (("raw pyarrow write", "raw"), ("raw read from the store", "read"), ("archive run", "archive")):
        client, store = figures[key + "_cpu"]
        table.add_row(name, f"{rows / figures[key + '_s']:,.0f}", f"{client + store:.2f} ({client:.2f} + {store:.2f})")
    table.add_row("archive / raw write", f"{figures['raw_s'] / figures['archive_s']:.2f}",
                  f"{sum(figures['raw_cpu']) / sum(figures['archive_cpu']):.2f}")
    table.add_row("archive size (MiB)", f"{figures['archive_bytes'] / 2**20:.1f}", "")
    table.add_row("fetch archive for DuckDB (s)", f"{figures['fetch_s']:.3f}", "")
    table.add_row("DuckDB query over the archive (s)", f"{figures['query_s']:.3f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
