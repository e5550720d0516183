"""Analytics benchmark: the dashboard's query mix at 1, 10 and 50 concurrent clients, and the
latency of uncached 90-day queries, at 1M and (with --sizes) 10M stored events.

    python bench/analytics.py [--sizes 1000000,10000000] [--players 2000] [--days 400] [--cold-only] [--keep DIR]

For each size it makes a database (embedded PostgreSQL in a temporary directory, or a new
database on GAMEMETRICS_DATABASE_URL's server), loads a game's history straight into the
events table one day at a time and builds the rollups with the processor's own rollup SQL (the
HTTP path would take hours for 10M events here; bench/ingest.py measures that path), then starts
`gamemetrics serve analytics` as its own process and measures it over HTTP with a token from
`gamemetrics admin issue-token`:

- throughput: requests/s and p50/p99 latency of the dashboard mix (DAU, MAU, revenue, retention,
  sessions, top events, games; repeated, so answered from the cache) for --duration seconds at
  each concurrency;
- cold latency: p50/p99 of 90-day activeUsers, revenue and retention (90 cohorts × days 1, 7,
  30) queries whose ranges all differ, so none is answered from the cache.

--cold-only skips the throughput phase. --keep DIR keeps each size's database (in DIR for the
embedded server, on the server otherwise) with what was loaded, and a later run with the same
DIR, --players and --days measures it again without loading: loading 10M events takes minutes.
Migrations still run, so a new revision is measured on the data already loaded.

Players arrive evenly over the days and play on about 30% of the days after they arrive; the
events per player-day grow with the size, so both sizes have the same rollup rows per day and
the cold figures show whether cost follows the days asked or the events stored. The load
generator runs on the same machine and its CPU is reported beside the server's. It prints
figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import uvloop
from raw_http import connection, exchange, post_request  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import upgrade
from gamemetrics.services.processor.columns import EVENT_COLUMNS, PROFILE_COLUMNS
from gamemetrics.services.processor.sink import _ROLLUPS

console = Console()
RESULTS = Path(__file__).parent / "results" / "analytics.json"

# One active player-day: a session of `k` events from a start time fixed per player.
DAY_OF_EVENTS = """
INSERT INTO new_events (tenant_id, game_id, event_id, event_type, player_id, session_id, event_time, received_at,
                        source, platform, os, country, revenue_usd, properties, player_latest, latest_platform,
                        latest_os, latest_country)
SELECT %(t)s, %(g)s, gen_random_uuid(), e.kind, 'player-' || p, 'player-' || p || '-' || %(i)s, e.at, e.at,
       'bench', 'ios', 'ios', 'US', CASE WHEN e.kind = 'purchase' THEN 4.99 END,
       CASE e.kind WHEN 'level_complete' THEN jsonb_build_object('level', n, 'score', n * 100 + p %% 97)
                   WHEN 'session_end' THEN jsonb_build_object('duration_seconds', %(k)s * 20)
                   WHEN 'purchase' THEN '{"item_id": "gems", "price": 4.99, "currency": "USD"}'::jsonb
                   ELSE '{}'::jsonb END,
       -- The day's last event is the player's latest: it carries their profile, as stitching marks it.
       n = %(k)s, CASE WHEN n = %(k)s THEN 'ios' END, CASE WHEN n = %(k)s THEN 'ios' END,
       CASE WHEN n = %(k)s THEN 'US' END
FROM generate_series(0, %(players)s - 1) AS p
CROSS JOIN generate_series(1, %(k)s) AS n
CROSS JOIN LATERAL (SELECT
    CASE WHEN n = 1 THEN 'session_start' WHEN n = %(k)s THEN 'session_end'
         WHEN n %% 25 = 7 AND p %% 10 = 0 THEN 'purchase' WHEN n %% 3 = 0 THEN 'level_complete'
         ELSE 'level_start' END AS kind,
    %(midnight)s::timestamptz + (abs(hashtext(p::text)) %% 72000) * interval '1 second'
        + n * interval '20 seconds' AS at) AS e
WHERE p::bigint * %(days)s / %(players)s <= %(i)s AND abs(hashtext(p || ':' || %(i)s)) %% 100 < 30
"""


@contextmanager
def database(size: int, keep: Path | None, shape: dict[str, int]) -> Iterator[tuple[str, Path, dict[str, Any] | None]]:
    """A database for one size, a data dir for the service's keys, and what a previous run with
    `keep` loaded into it with the same `shape` (None: the database is new and empty)."""
    data_dir = keep or Path(tempfile.mkdtemp(prefix="gm-bench-analytics-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    name = f"gm_bench_analytics_{size}"
    record = data_dir / f"loaded-{size}.json"
    server = None
    try:
        if os.environ.get("GAMEMETRICS_DATABASE_URL"):
            base = os.environ["GAMEMETRICS_DATABASE_URL"]
            url = psycopg.conninfo.make_conninfo(base, dbname=name)
        else:
            server = EmbeddedPostgres(data_dir)
            base, url = server.url(), server.url(name)
        kept = json.loads(record.read_text()) if keep and record.exists() else None
        with psycopg.connect(base, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
            loaded = kept["loaded"] if exists and kept and kept["shape"] == shape else None
            if loaded is None:
                record.unlink(missing_ok=True)  # until the new load completes
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
        upgrade(url)
        yield url, data_dir, loaded
    finally:
        if server is not None:
            server.stop()
        if keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def load(url: str, events: int, players: int, days: int) -> dict[str, Any]:
    """A tenant, a game and about `events` events over `days` days ending today; rollups built by
    the processor's SQL. Returns the ids and what was stored."""
    # Expected active player-days: player p plays on ~30% of the days from its arrival on.
    player_days = 0.3 * players * (days + 1) / 2
    per_day = max(3, round(events / player_days))
    first = datetime.now(UTC).date() - timedelta(days=days - 1)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        tenant, game = conn.execute(
            "WITH t AS (INSERT INTO tenants (tenant_id, name) VALUES (gen_random_uuid(), 'Bench') RETURNING tenant_id)"
            " INSERT INTO games (game_id, tenant_id, name) SELECT gen_random_uuid(), tenant_id, 'Bench' FROM t"
            " RETURNING tenant_id, game_id"
        ).fetchone()
        conn.execute("CREATE TEMP TABLE new_events (LIKE events INCLUDING DEFAULTS)")
        # The columns the processor's batch table adds for the players rollup.
        conn.execute("ALTER TABLE new_events ADD COLUMN player_latest boolean NOT NULL DEFAULT false, "
                     + ", ".join(f"ADD COLUMN {column} text" for column in PROFILE_COLUMNS.names[1:]))
        columns = EVENT_COLUMNS.sql_list
        for i in range(days):
            day = first + timedelta(days=i)
            conn.execute("SELECT gm_ensure_event_partition(%s)", (day,))
            conn.execute(DAY_OF_EVENTS, {"t": tenant, "g": game, "i": i, "k": per_day, "players": players,
                                         "days": days, "midnight": datetime.combine(day, datetime.min.time(), UTC)})
            conn.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM new_events")
            conn.execute(_ROLLUPS)
            conn.execute("TRUNCATE new_events")
            conn.commit()
            if i % 50 == 49:
                console.print(f"  loaded {i + 1}/{days} days ({time.perf_counter() - started:.0f}s)")
        conn.execute("ANALYZE")
        stored = conn.execute("SELECT events_stored FROM game_counters WHERE game_id = %s", (game,)).fetchone()[0]
        rollup_rows = conn.execute("SELECT count(*) FROM player_days").fetchone()[0]
        conn.commit()
    return {"tenant_id": str(tenant), "game_id": str(game), "events": stored, "player_days": rollup_rows,
            "events_per_player_day": per_day, "load_s": round(time.perf_counter() - started, 1), "first_day": first}


def start_service(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(data_dir),
           "GAMEMETRICS_PORT": str(port), "GAMEMETRICS_LOG_LEVEL": "warning"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "analytics"], env=env,
                               stdout=(data_dir / "analytics.log").open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"analytics exited:\n{(data_dir / 'analytics.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("analytics was not ready within 60s")


def token(url: str, data_dir: Path, tenant: str) -> str:
    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(data_dir)}
    out = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "issue-token", "--tenant", tenant,
                          "--ttl", "7200"], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["access_token"]


def dashboard_mix(game: str, today: date) -> list[dict[str, Any]]:
    """What a LiveOps dashboard asks on every refresh: last 30 days."""
    span = {"g": game, "from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    queries = [
        "query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from, to: $to) { date value } }",
        "query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from, to: $to, window: MONTH)"
        " { date value } }",
        "query($g: ID!, $from: Date!, $to: Date!) { revenue(gameId: $g, from: $from, to: $to)"
        " { date gross payers arpdau arppu conversion } }",
        "query($g: ID!, $from: Date!, $to: Date!) { retention(gameId: $g, cohortFrom: $from, cohortTo: $to)"
        " { cohortDate size days { day value } } }",
        "query($g: ID!, $from: Date!, $to: Date!) { sessions(gameId: $g, from: $from, to: $to)"
        " { date sessions averageLengthSeconds medianLengthSeconds } }",
        "query($g: ID!, $from: Date!, $to: Date!) { topEvents(gameId: $g, from: $from, to: $to) { eventType count } }",
        "{ games { id name eventsStored } }",
    ]
    return [{"query": q, "variables": span if "$g" in q else {}} for q in queries]


def cold_queries(game: str, today: date, count: int) -> dict[str, list[dict[str, Any]]]:
    """90-day queries, each over a different range, so none comes from the cache."""
    def span(j: int) -> dict[str, str]:
        return {"g": game, "from": (today - timedelta(days=89 + j)).isoformat(),
                "to": (today - timedelta(days=j)).isoformat()}

    shapes = {
        "DAU 90 days": "query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from, to: $to)"
                       " { date value } }",
        "MAU 90 days": "query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from, to: $to,"
                       " window: MONTH) { date value } }",
        "revenue 90 days": "query($g: ID!, $from: Date!, $to: Date!) { revenue(gameId: $g, from: $from, to: $to)"
                           " { date gross payers arpdau arppu conversion } }",
        "retention 90 cohorts": "query($g: ID!, $from: Date!, $to: Date!) { retention(gameId: $g,"
                                " cohortFrom: $from, cohortTo: $to, days: [1, 7, 30]) { cohortDate size days"
                                " { day value } } }",
    }
    return {name: [{"query": q, "variables": span(j)} for j in range(count)] for name, q in shapes.items()}


def _requests(bearer: str, bodies: list[dict[str, Any]]) -> list[bytes]:
    """Each body as the bytes of a complete request, made once: the client should cost little."""
    return [post_request("/graphql", bearer, json.dumps(body).encode()) for body in bodies]


async def run_load(port: int, bearer: str, bodies: list[dict[str, Any]], concurrency: int,
                   duration: float | None) -> dict[str, Any]:
    """`concurrency` clients, each on its own kept-alive connection, sending `bodies` round-robin
    until `duration` ends (or each body once when there is no duration)."""
    requests = _requests(bearer, bodies)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration if duration else None
    counter = iter(range(10**12))

    async def client() -> None:
        nonlocal errors
        reader, writer = await connection(port)
        try:
            while True:
                i = next(counter)
                if (deadline is None and i >= len(requests)) or (deadline and time.perf_counter() >= deadline):
                    return
                started = time.perf_counter()
                status, _, body = await exchange(reader, writer, requests[i % len(requests)])
                latencies.append(time.perf_counter() - started)
                if status != 200 or b'"errors"' in body:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    shape = {"players": args.players, "days": args.days}
    with database(size, args.keep, shape) as (url, data_dir, loaded):
        if loaded is not None:
            console.print(f"[bold]{size:,} events[/]: reusing the database loaded from {loaded['first_day']}")
        else:
            console.print(f"[bold]{size:,} events[/]: loading {args.days} days of {args.players} players")
            loaded = load(url, size, args.players, args.days)
            if args.keep:
                (data_dir / f"loaded-{size}.json").write_text(json.dumps({"shape": shape, "loaded": loaded},
                                                                         default=str))
        console.print(f"  stored {loaded['events']:,} events, {loaded['player_days']:,} player-days"
                      f" in {loaded['load_s']}s")
        port = _free_port()
        service = start_service(url, data_dir, port)
        try:
            bearer = token(url, data_dir, loaded["tenant_id"])
            today = datetime.now(UTC).date()
            server = psutil.Process(service.pid)
            me = psutil.Process()
            results: dict[str, Any] = {"size": size, **{k: v for k, v in loaded.items() if k != "first_day"},
                                       "throughput": {}, "cold": {}}
            mix = dashboard_mix(loaded["game_id"], today)
            if not args.cold_only:
                uvloop.run(run_load(port, bearer, mix, 4, 2.0))  # warm the cache and the connections
            for concurrency in [] if args.cold_only else args.concurrency:
                server_cpu, client_cpu = sum(server.cpu_times()[:2]), sum(me.cpu_times()[:2])
                figures = uvloop.run(run_load(port, bearer, mix, concurrency, args.duration))
                figures["server_cpu_s"] = round(sum(server.cpu_times()[:2]) - server_cpu, 1)
                figures["client_cpu_s"] = round(sum(me.cpu_times()[:2]) - client_cpu, 1)
                results["throughput"][concurrency] = figures
            shapes = cold_queries(loaded["game_id"], today, args.cold_requests + 16)
            for name, bodies in shapes.items():
                # The first ranges warm each pooled connection (plans, catalog caches); not measured.
                uvloop.run(run_load(port, bearer, bodies[-16:], 8, None))
                results["cold"][name] = uvloop.run(run_load(port, bearer, bodies[:-16], 1, None))
        finally:
            service.terminate()
            service.wait(timeout=15)
        return results


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(all_results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    table = Table(title=f"Dashboard mix (7 queries, 30 days, cached), {args.duration:.0f}s per level")
    for column in ("stored events", "clients", "requests/s", "p50 ms", "p99 ms", "errors", "server CPU s",
                   "client CPU s"):
        table.add_column(column, justify="right")
    for r in all_results:
        for concurrency, f in r["throughput"].items():
            table.add_row(f"{r['events']:,}", str(concurrency), str(f["rps"]), str(f["p50_ms"]), str(f["p99_ms"]),
                          str(f["errors"]), str(f["server_cpu_s"]), str(f["client_cpu_s"]))
    if table.row_count:
        console.print(table)
    cold = Table(title=f"Uncached 90-day queries, one client, {args.cold_requests} different ranges each")
    for column in ("stored events", "player-days", "query", "p50 ms", "p99 ms", "errors"):
        cold.add_column(column, justify="right")
    for r in all_results:
        for name, f in r["cold"].items():
            cold.add_row(f"{r['events']:,}", f"{r['player_days']:,}", name, str(f["p50_ms"]), str(f["p99_ms"]),
                         str(f["errors"]))
    console.print(cold)
    console.print(f"machine: {os.cpu_count()} CPUs; the load generator shares them with the service and PostgreSQL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000", help="stored events, comma-separated (e.g. 1000000,10000000)")
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per concurrency level")
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--cold-requests", type=int, default=200)
    parser.add_argument("--cold-only", action="store_true", help="skip the throughput phase")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the databases in DIR and reuse them when run again with the same DIR")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    results = [measure(int(size), args) for size in args.sizes.split(",")]
    report(results, args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
