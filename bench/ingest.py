"""Ingest benchmark: events through the HTTP API until stored, beside PostgreSQL's raw COPY rate.

    python bench/ingest.py [--events 1000000] [--batch 500] [--concurrency 8] [--processors 2] [--kafka]
                           [--warmup 50000] [--tracing]

Starts the embedded PostgreSQL (or uses GAMEMETRICS_DATABASE_URL), `serve ingest` and as many
`serve processor` processes as `gamemetrics up` runs as subprocesses, sends pre-built batches with
concurrent HTTP clients after a warm-up of --warmup events that is not measured (a platform that
has been running is warm: the broker's JVM has compiled its hot paths, the day's partitions exist),
and prints: end-to-end events/s (first request sent → last event stored),
request p50/p99, peak memory (PostgreSQL: PSS) and CPU time of each process, and the COPY rate of
the same rows into a table shaped like `events` on the same server in the same run (measured first,
while the server is idle), with the ratio of the two. It prints figures; it never passes or fails.

With --kafka the bus is a local Kafka broker (jars from `make kafka-libs`) started for the run,
and the figures add the broker's raw producer rate: the same raw messages produced in a tight
loop with the services' producer settings (what kafka-producer-perf-test measures), and the ratio.

With --tracing the services export OpenTelemetry spans (every request, every batch) over OTLP/HTTP
to a loopback endpoint in this script that takes and discards them; run once with and once without
to see what tracing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import psycopg
from otlp_sink import OtlpSink  # bench/ is the script's directory
from raw_http import connection, exchange, post_request, retry_after
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gamemetrics.adapters.kafka.local import LocalBroker
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import upgrade
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore

console = Console()
TYPES = ("session_start", "level_start", "level_complete", "item_acquired", "purchase", "session_end")


def make_events(count: int, players: int) -> list[dict[str, Any]]:
    """A realistic mix of event types over the last hour, spread across `players`."""
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        kind = TYPES[i % len(TYPES)]
        properties: dict[str, Any] = {}
        if kind in ("level_start", "level_complete"):
            properties = {"level": i % 40, "score": i % 1000}
        elif kind == "item_acquired":
            properties = {"item_id": f"item-{i % 50}"}
        elif kind == "purchase":
            properties = {"item_id": "gems", "price": 4.99, "currency": ("USD", "EUR", "JPY")[i % 3]}
        elif kind == "session_end":
            properties = {"duration_seconds": 300}
        events.append({
            "event_id": str(uuid.uuid4()),
            "event_type": kind,
            "player_id": f"player-{i % players}",
            "timestamp": (now - timedelta(seconds=(count - i) * 3600 / count)).isoformat(),
            "properties": properties,
            "context": {"platform": ("ios", "android", "pc")[i % 3], "country": ("US", "DE", "JP")[i % 3],
                        "app_version": "1.2.3"},
        })
    return events


def batch_bodies(events: list[dict[str, Any]], size: int) -> list[bytes]:
    """The request bodies that send `events` in batches of `size`."""
    encoder = msgspec.json.Encoder()
    return [encoder.encode({"events": events[i:i + size]}) for i in range(0, len(events), size)]


class RssSampler(threading.Thread):
    """Samples the resident memory and CPU time of the services and PostgreSQL until stopped."""

    def __init__(self, processes: dict[str, int], postgres_pid: int | None) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, int] = {name: 0 for name in processes} | ({"postgres (all)": 0} if postgres_pid else {})
        self._processes = processes
        self._postgres = postgres_pid
        self._stop = threading.Event()
        # CPU seconds by pid, and by pid at the start: PostgreSQL's backends come and go.
        self._cpu: dict[str, dict[int, float]] = {name: {} for name in self.peaks}
        self._cpu_start: dict[int, float] = {}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each process used while sampled."""
        return {name: sum(t - self._cpu_start.get(pid, 0.0) for pid, t in by_pid.items())
                for name, by_pid in self._cpu.items()}

    def _sample(self, name: str, processes: list[psutil.Process], first: bool) -> None:
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error), process.oneshot():
                # PostgreSQL's processes share its buffer cache: their proportional share (PSS)
                # adds up to what the server holds, where RSS would count the cache once per process.
                total += process.memory_full_info().pss if len(processes) > 1 else process.memory_info().rss
                times = process.cpu_times()
                self._cpu[name][process.pid] = times.user + times.system
                if first:
                    self._cpu_start[process.pid] = times.user + times.system
        self.peaks[name] = max(self.peaks[name], total)

    def run(self) -> None:
        first = True
        while not self._stop.is_set():
            for name, pid in self._processes.items():
                with contextlib.suppress(psutil.Error):
                    self._sample(name, [psutil.Process(pid)], first)
            if self._postgres:
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(self._postgres)
                    self._sample("postgres (all)", [root, *root.children()], first)
            first = False
            self._stop.wait(0.5)  # reading PostgreSQL's smaps for PSS costs CPU of its own

    def stop(self) -> None:
        self._stop.set()


async def send_all(port: int, key: str, bodies: list[bytes], concurrency: int,
                   progress: Progress, task: Any) -> list[float]:
    """Every body once, `concurrency` connections at a time, honouring 429/503 with Retry-After."""
    latencies: list[float] = []
    requests = [post_request("/v1/events", key, body) for body in bodies]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        reader, writer = await connection(port)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                while True:
                    started = time.perf_counter()
                    status, head, answer = await exchange(reader, writer, request)
                    if status in (429, 503):
                        await asyncio.sleep(retry_after(head))
                        continue
                    if status != 200:
                        raise RuntimeError(f"ingest answered {status}: {answer[:500]!r}")
                    latencies.append(time.perf_counter() - started)
                    progress.advance(task, msgspec.json.decode(answer)["accepted"])
                    break
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def send_and_store(port: int, key: str, url: str, game_id: uuid.UUID, bodies: list[bytes], events: int,
                         concurrency: int) -> None:
    """Send `bodies` and wait until all their `events` are stored (the warm-up, unmeasured)."""
    with Progress(console=console, disable=True) as quiet:
        await send_all(port, key, bodies, concurrency, quiet, quiet.add_task("warm-up"))
    while await asyncio.to_thread(stored_count, url, game_id) < events:
        await asyncio.sleep(0.2)


def stored_count(url: str, game_id: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT events_stored FROM game_counters WHERE game_id = %s", (game_id,)).fetchone()
        return int(row[0]) if row else 0


def wal_counters(url: str) -> tuple[int, int, int]:
    """WAL bytes and full-page images written so far, and checkpoints begun, server-wide."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT wal_bytes::bigint, wal_fpi, (SELECT num_timed + num_requested FROM pg_stat_checkpointer)"
            " FROM pg_stat_wal").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def copy_rate(url: str, events: list[dict[str, Any]], tenant: uuid.UUID, game: uuid.UUID) -> float:
    """Rows/s of COPY of the same events into an unpartitioned table shaped like `events` (its columns and indexes)."""
    encoder = msgspec.json.Encoder()
    now = datetime.now(UTC)
    rows = [
        (tenant, game, uuid.UUID(e["event_id"]), e["event_type"], None, e["player_id"], None,
         datetime.fromisoformat(e["timestamp"]), now, "live", e["context"]["platform"], None, "1.2.3",
         e["context"]["country"], False, None, encoder.encode(e["properties"]).decode(),
         encoder.encode(e["context"]).decode())
        for e in events
    ]
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(
            "CREATE TABLE bench_copy (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_copy FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return len(rows) / elapsed


async def setup_key(url: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    from gamemetrics.adapters.postgres.pool import open_pool

    pool = await open_pool(url, max_size=2, name="bench")
    try:
        store = TenancyStore(pool)
        tenant = await store.create_tenant("bench")
        game = await store.create_game(tenant, "bench game")
        key = await store.create_write_key(game)
        return tenant, game, key.write_key
    finally:
        await pool.close()


def start_kafka(data_dir: Path) -> tuple[LocalBroker, dict[str, str]]:
    """A local broker for the run, the platform's topics on it, and the settings that point at it."""
    from gamemetrics.adapters.kafka import KafkaBus
    from gamemetrics.runtime import topic_partitions
    from gamemetrics.settings import KafkaSettings, Settings

    broker = LocalBroker(data_dir / "kafka", heap_mb=1024)
    with console.status("starting Kafka"):
        broker.start()
        broker.wait_ready()
    env = {"GAMEMETRICS_KAFKA_BOOTSTRAP": broker.bootstrap, "GAMEMETRICS_KAFKA_REPLICATION_FACTOR": "1",
           "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS": "1"}
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, replication_factor=1, min_insync_replicas=1))
    asyncio.run(KafkaBus(settings, topic_partitions(settings)).ensure_topics(topic_partitions(settings)))
    return broker, env


def kafka_produce_rate(bootstrap: str, events: list[dict[str, Any]], tenant: uuid.UUID, game: uuid.UUID) -> float:
    """Raw envelopes of the same events produced in a tight loop, with the services' producer settings."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from gamemetrics.adapters.kafka.config import producer_config
    from gamemetrics.events.envelope import RawEnvelope, partition_key
    from gamemetrics.settings import KafkaSettings, Settings

    settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap))
    topic = f"bench.producer-rate.{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the topic exists
    admin.create_topics([NewTopic(topic, settings.bus.partitions, 1)])[topic].result(timeout=30)
    now = datetime.now(UTC)
    encoder = msgspec.json.Encoder()
    messages = [(partition_key(tenant, e["player_id"]),
                 encoder.encode(RawEnvelope(tenant, game, now, msgspec.Raw(encoder.encode(e))))) for e in events]
    producer = Producer({k: v for k, v in producer_config(settings, "bench").items() if k != "logger"})
    started = time.perf_counter()
    for i, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(120)
    return len(messages) / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--players", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--processors", type=int, default=Settings().processor.processes,
                        help="Processor processes sharing the partitions (default: as many as `gamemetrics up` runs).")
    parser.add_argument("--kafka", action="store_true", help="Run the bus on a local Kafka broker.")
    parser.add_argument("--warmup", type=int, default=50_000,
                        help="Events sent and stored before the measured run (0: none): a running platform is warm.")
    parser.add_argument("--tracing", action="store_true",
                        help="The services export spans over OTLP/HTTP to a loopback endpoint of this script.")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="gm-bench-"))
    server = None
    if os.environ.get("GAMEMETRICS_DATABASE_URL"):
        url = os.environ["GAMEMETRICS_DATABASE_URL"]
    else:
        server = EmbeddedPostgres(data_dir)
        url = server.ensure_database("gamemetrics")
    upgrade(url)
    tenant, game, key = asyncio.run(setup_key(url))
    with console.status(f"building {args.events:,} events"):
        events = make_events(args.events, args.players)
        bodies = batch_bodies(events, args.batch)
        warmup_bodies = batch_bodies(make_events(args.warmup, args.players), args.batch)
    # The million prebuilt events live to the end: out of the collector's sight, so that its full
    # passes do not add their scans to the load generator's CPU.
    gc.freeze()

    # Before the pipeline runs, so that the server is idle: afterwards it may still be busy with what
    # the run left (autovacuum of the tables it filled, dirty buffers being written).
    with console.status("measuring raw COPY rate"):
        copy_rows_s = copy_rate(url, events, tenant, game)

    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_PORT": str(args.port),
           "GAMEMETRICS_DATA_DIR": str(data_dir), "GAMEMETRICS_LOG_LEVEL": "warning"}
    for name in [n for n in env if n.startswith("OTEL_") or n == "GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT"]:
        del env[name]  # traced only when asked
    sink = OtlpSink() if args.tracing else None
    if sink is not None:
        env["GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    broker = None
    if args.kafka:
        broker, kafka_env = start_kafka(data_dir)
        env.update(kafka_env)
    names = {"ingest": "ingest"} | {
        (f"processor {i + 1}" if args.processors > 1 else "processor"): "processor" for i in range(args.processors)}
    services = {name: subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", service], env=env)
                for name, service in names.items()}
    base_url = f"http://127.0.0.1:{args.port}"
    produce_rate = None
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        pg_pid = None
        if server is not None:
            pid_file = server.pgdata / "postmaster.pid"
            pg_pid = int(pid_file.read_text().split()[0])
        if warmup_bodies:
            with console.status(f"warming up with {args.warmup:,} events"):
                asyncio.run(send_and_store(args.port, key, url, game, warmup_bodies, args.warmup, args.concurrency))
        sampled = {n: p.pid for n, p in services.items()}
        if broker is not None and broker.process is not None:
            sampled["kafka broker"] = broker.process.pid
        sampler = RssSampler(sampled, pg_pid)
        sampler.start()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=console) as progress:
            accepted_task = progress.add_task("accepted", total=args.events)
            stored_task = progress.add_task("stored", total=args.events)
            started = time.perf_counter()

            async def run() -> list[float]:
                sending = asyncio.create_task(
                    send_all(args.port, key, bodies, args.concurrency, progress, accepted_task))
                while True:
                    stored = await asyncio.to_thread(stored_count, url, game) - args.warmup
                    progress.update(stored_task, completed=stored)
                    if stored >= args.events:
                        break
                    await asyncio.sleep(0.5)
                return await sending

            client_started = resource.getrusage(resource.RUSAGE_SELF)
            wal_started = wal_counters(url)
            latencies = asyncio.run(run())
            elapsed = time.perf_counter() - started
            client_usage = resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = (client_usage.ru_utime - client_started.ru_utime
                          + client_usage.ru_stime - client_started.ru_stime)
            wal_bytes, wal_fpi, checkpoints = (b - a for a, b in zip(wal_started, wal_counters(url), strict=True))
        sampler.stop()
        if broker is not None:
            with console.status("measuring raw Kafka producer rate"):
                produce_rate = kafka_produce_rate(broker.bootstrap, events, tenant, game)
    finally:
        for process in services.values():
            process.terminate()
        for process in services.values():
            process.wait(timeout=30)
        if sink is not None:
            sink.close()
        if broker is not None:
            broker.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # a million events leave gigabytes of database and WAL

    e2e = args.events / elapsed
    table = Table(title=f"ingest benchmark — {args.events:,} events, batches of {args.batch}, "
                        f"{args.concurrency} concurrent clients, {os.cpu_count()} CPUs, "
                        f"bus: {'Kafka' if args.kafka else 'embedded log'}, tracing {'on' if sink else 'off'}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("end-to-end events/s (sent → stored)", f"{e2e:,.0f}")
    table.add_row("request latency p50", f"{percentile(latencies, 0.50) * 1000:.1f} ms")
    table.add_row("request latency p99", f"{percentile(latencies, 0.99) * 1000:.1f} ms")
    for name, peak in sampler.peaks.items():
        table.add_row(f"peak {'PSS' if name == 'postgres (all)' else 'RSS'} {name}", f"{peak / 2**20:,.0f} MiB")
    for name, seconds in {**sampler.cpu_seconds(), "load generator (this script)": client_cpu}.items():
        table.add_row(f"CPU {name}", f"{seconds:,.1f} s ({seconds * 1e6 / args.events:,.0f} µs/event)")
    # Random keys (event ids, players) dirty index pages all over: after each checkpoint the first
    # change to a page writes the whole page to the WAL, which is where much of the WAL goes.
    table.add_row("WAL written (full-page images, checkpoints)",
                  f"{wal_bytes / args.events:,.0f} B/event ({wal_fpi / args.events:.2f}/event, {checkpoints})")
    table.add_row("raw PostgreSQL COPY rows/s (same rows, same server)", f"{copy_rows_s:,.0f}")
    table.add_row("end-to-end / raw COPY", f"{e2e / copy_rows_s:.2f}")
    if sink is not None:
        table.add_row("span exports received (requests, bytes)", f"{sink.requests:,}, {sink.bytes:,}")
    if produce_rate is not None:
        table.add_row("raw Kafka producer msgs/s (same messages, same broker)", f"{produce_rate:,.0f}")
        table.add_row("end-to-end / raw Kafka producer", f"{e2e / produce_rate:.2f}")
    console.print(table)
    results = {
        "events": args.events, "batch": args.batch, "concurrency": args.concurrency,
        "end_to_end_events_per_s": round(e2e), "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "peak_rss_mib": {n: round(p / 2**20) for n, p in sampler.peaks.items()},
        "copy_rows_per_s": round(copy_rows_s), "ratio": e2e / copy_rows_s, "elapsed_s": elapsed,
        "wal_bytes_per_event": round(wal_bytes / args.events), "wal_fpi_per_event": wal_fpi / args.events,
        "checkpoints": checkpoints,
        "bus": "kafka" if args.kafka else "embedded", "tracing": sink is not None,
    }
    if produce_rate is not None:
        results["kafka_producer_msgs_per_s"] = round(produce_rate)
        results["ratio_to_kafka_producer"] = e2e / produce_rate
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = ("ingest-kafka" if args.kafka else "ingest") + ("-traced" if sink is not None else "")
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
