"""Recommender benchmark: training time, then recommendations/s and p50/p99 latency over HTTP,
cached and uncached, at 1, 10 and 50 clients, the server's peak RSS, and beside them the raw
limits of the same machine in the same run: the same search through the Vectors port and through
Qdrant's local mode itself, numpy's top 10 of the item matrix, a cache read, and a bare HTTP route.

    python bench/recommender.py [--players 100000] [--items 2000] [--interactions 5000000] [--duration 5]

It makes a database (embedded PostgreSQL in a temporary directory, or a new database on
GAMEMETRICS_DATABASE_URL's server), has PostgreSQL generate synthetic interactions with taste
structure (each player favours two of twenty categories) in the recommender's table, trains the
model in this process with the service's own trainer on Qdrant's local mode, measures the raw
rates, then closes Qdrant (local mode lets one process hold it) and starts `gamemetrics serve
recommender` on the same data dir, measured over HTTP with a token from `gamemetrics admin
issue-token`, each client on a kept-alive connection of its own (bench/raw_http.py):

- cached: every client asks the same 100 players again and again, asked once before the clock
  starts (every timed answer comes from the cache);
- uncached: every request asks a player not asked before, so each one reads ownership, the
  player's vector and runs the filtered search;
- cold: every request asks a player the game has never seen (popular items of the recent window);
- raw HTTP: the same requests to a Starlette route that answers a body of the same size, on
  uvicorn as `gamemetrics serve` runs it: the ceiling of HTTP and of the load generator here.

Before any clock starts, one uncached and one cold answer are asked (the first of each kind reads
what the later ones reuse). Beside each rate it prints the server's CPU time per request while
the clock ran, which varies less than the rates on a shared machine.

The load generator runs on the same machine. It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
import psycopg
import uvicorn
import uvloop
from raw_http import connection, exchange  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.adapters.qdrant.vectors import QdrantVectors, local_vectors
from gamemetrics.migrations import upgrade
from gamemetrics.services.recommender.interactions import Interactions
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.training import Trainer
from gamemetrics.settings import RecommenderSettings
from gamemetrics.web.responses import json_response

CATEGORIES = 20
CHUNK = 1_000_000
CLIENTS = (1, 10, 50)
console = Console()


@contextmanager
def database(root: Path) -> Iterator[str]:
    """A fresh migrated database: on GAMEMETRICS_DATABASE_URL's server, or an embedded one under `root`."""
    base = os.environ.get("GAMEMETRICS_DATABASE_URL")
    if base is None:
        server = EmbeddedPostgres(root / "pg")
        try:
            url = server.ensure_database("bench_recommender")
            upgrade(url)
            yield url
        finally:
            server.stop()
        return
    name = f"bench_recommender_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(url: str, players: int, items: int, interactions: int) -> tuple[uuid.UUID, uuid.UUID, float]:
    """A tenant and game with `interactions` taste-structured item events; (tenant, game, seconds).

    The rows are made by PostgreSQL itself (generate_series), a million at a time: each player
    favours two of twenty categories, 80 % of their events name an item of those."""
    tenant, game = uuid.uuid4(), uuid.uuid4()
    per_category = max(1, items // CATEGORIES)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
        conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'bench')", (game, tenant))
        conn.execute("SELECT setseed(0.5)")
        for start in range(0, interactions, CHUNK):
            conn.execute(
                "INSERT INTO rec_interactions (tenant_id, event_id, game_id, player_id, item_id, event_type, at,"
                " country, platform)"
                " SELECT %(tenant)s, gen_random_uuid(), %(game)s, 'player-' || p,"
                " 'item-' || (c * %(per)s + floor(random() * %(per)s)::int),"
                " CASE WHEN k < 0.1 THEN 'purchase' WHEN k < 0.5 THEN 'item_acquired' ELSE 'item_used' END,"
                " now() - random() * interval '14 days', 'DE', 'ios'"
                " FROM (SELECT n %% %(players)s AS p, random() AS k, CASE WHEN random() >= 0.8"
                " THEN floor(random() * %(categories)s)::int WHEN random() < 0.5"
                " THEN (n %% %(players)s * 7) %% %(categories)s"
                " ELSE (n %% %(players)s * 13 + 3) %% %(categories)s END AS c"
                " FROM generate_series(%(start)s, %(end)s) AS n) AS drawn",
                {"tenant": tenant, "game": game, "per": per_category, "players": players, "categories": CATEGORIES,
                 "start": start, "end": min(start + CHUNK, interactions) - 1})
        conn.execute("INSERT INTO rec_items (tenant_id, game_id, item_id, category, price)"
                     " SELECT DISTINCT tenant_id, game_id, item_id, 'c' || (substr(item_id, 6)::int % 20),"
                     " (substr(item_id, 6)::int % 50) FROM rec_interactions")
        conn.execute("ANALYZE rec_interactions")
    return tenant, game, time.perf_counter() - started


async def train_and_measure_raw(url: str, data_dir: Path, tenant: uuid.UUID, game: uuid.UUID, items: int,
                                settings: RecommenderSettings, duration: float) -> dict[str, float]:
    """Train with the service's trainer; then the raw rates: the same search through the Vectors
    port and through Qdrant's local mode itself, numpy's top 10 of the item matrix, a cache read."""
    pool = await open_pool(url, max_size=4, name="bench")
    vectors = local_vectors(data_dir / "qdrant")
    try:
        interactions = Interactions(pool)
        models = Models(pool, vectors)
        phases: dict[str, float] = {}
        mark = time.perf_counter()

        def fitted(done: int, total: int) -> None:
            if done == total:
                phases["fit_s"] = time.perf_counter() - mark

        started = time.perf_counter()
        trained = await Trainer(pool, interactions, models, settings).train(tenant, game, fitting=fitted)
        phases["train_s"] = time.perf_counter() - started
        model = trained.model
        kept = await vectors.vectors(model.players, [model.name(f"player-{i}") for i in range(50)])
        player_vectors = list(kept.values())
        where = {**model.where(), "available": True}
        searches = {"vectors_port_queries_per_s": vectors.search,  # the adapter the service uses
                    "qdrant_local_queries_per_s": functools.partial(QdrantVectors.search, vectors)}
        for name, search in searches.items():
            count, deadline = 0, time.perf_counter() + min(duration, 3.0)
            begun = time.perf_counter()
            while time.perf_counter() < deadline:
                await search(model.items, player_vectors[count % len(player_vectors)], limit=10, where=where)
                count += 1
            phases[name] = count / (time.perf_counter() - begun)
        names = [model.name(f"item-{i}") for i in range(items)]
        matrix = np.array(list((await vectors.vectors(model.items, names)).values()), dtype=np.float32)
        queries = np.array(player_vectors, dtype=np.float32)
        count, begun = 0, time.perf_counter()
        while time.perf_counter() - begun < min(duration, 2.0):
            for _ in range(100):
                scores = matrix @ queries[count % len(queries)]
                best = np.argpartition(-scores, 10)[:10]
                best[np.argsort(-scores[best])]
                count += 1
        phases["numpy_topk_per_s"] = count / (time.perf_counter() - begun)
        cache = MemoryCache(64 * 1024 * 1024)
        await cache.set("k", b"x" * 1500, 60)
        reads, begun = 0, time.perf_counter()
        while time.perf_counter() - begun < min(duration, 2.0):
            for _ in range(1000):
                await cache.get("k")
            reads += 1000
        phases["cache_reads_per_s"] = reads / (time.perf_counter() - begun)
        return phases
    finally:
        await vectors.close()
        await pool.close()


def start_server(command: list[str], env: dict[str, str], port: int, ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env={**env, "GAMEMETRICS_PORT": str(port)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{command[-1]} did not become ready")


def hello_app() -> Starlette:
    """An app that answers one route with a body of a recommendation's size: what HTTP alone costs."""
    body = {"player_id": "player-1", "recommendation_id": str(uuid.uuid4()), "model_version": 1,
            "items": [{"item_id": f"item-{i}", "score": 0.123456, "source": "collaborative"} for i in range(10)]}

    async def hello(request: Request) -> Response:
        return json_response(body)

    return Starlette(routes=[Route("/v1/games/{game_id}/players/{player_id}/recommendations", hello),
                             Route("/readyz", hello)])


def serve_hello(port: int) -> None:
    """uvicorn as `gamemetrics serve` runs it (httptools, uvloop), on the hello app."""
    uvicorn.run(hello_app(), host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_config=None,
                access_log=False)


def get_request(path: str, bearer: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n\r\n".encode()


async def measure(port: int, game: uuid.UUID, token: str, clients: int, duration: float, *, kind: str,
                  players: int, offset: int, server: psutil.Process) -> dict[str, float]:
    """Requests/s and latency percentiles of `clients` concurrent clients, each on its own kept-alive
    connection, for `duration` seconds. Cached: the 100 players asked are asked once before the clock
    starts, so every timed answer comes from the cache; uncached: known players never asked before;
    cold: players the game has never seen (popular items)."""
    cached = kind == "cached"
    latencies: list[float] = []
    failures = 0
    fresh = iter(range(offset, 10**9))

    def request(player: int, prefix: str = "player") -> bytes:
        return get_request(f"/v1/games/{game}/players/{prefix}-{player}/recommendations?n=10", token)

    warm = [request(player) for player in range(100)]
    if cached:
        reader, writer = await connection(port)
        for each in warm:
            await exchange(reader, writer, each)
        writer.close()
    deadline = time.perf_counter() + duration

    async def client(n: int) -> None:
        nonlocal failures
        reader, writer = await connection(port)
        k = n
        try:
            while time.perf_counter() < deadline:
                if cached:
                    asked = warm[k % 100]
                else:
                    asked = request(next(fresh) % players) if kind == "uncached" else request(next(fresh), "new")
                k += clients
                started = time.perf_counter()
                status, _, _ = await exchange(reader, writer, asked)
                latencies.append(time.perf_counter() - started)
                failures += status != 200
        finally:
            writer.close()

    begun, cpu = time.perf_counter(), sum(server.cpu_times()[:2])
    await asyncio.gather(*(client(n) for n in range(clients)))
    took, cpu = time.perf_counter() - begun, sum(server.cpu_times()[:2]) - cpu
    latencies.sort()
    return {"per_s": len(latencies) / took, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))], "failures": failures,
            "requests": len(latencies), "server_cpu_us": 1e6 * cpu / max(1, len(latencies))}


def on_server(load: Coroutine[None, None, dict[str, float]]) -> dict[str, float]:
    """The figures of `load`, run on uvloop as the analytics bench's load generator is."""
    return uvloop.run(load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--hello", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the raw HTTP server
    args = parser.parse_args()
    if args.hello:
        serve_hello(args.hello)
        return
    settings = RecommenderSettings()
    root = Path(tempfile.mkdtemp(prefix="gm-bench-rec-"))
    rows: list[Row] = []
    try:
        with database(root) as url:
            tenant, game, load_s = load(url, args.players, args.items, args.interactions)
            console.print(f"loaded {args.interactions:,} interactions of {args.players:,} players × {args.items:,}"
                          f" items in {load_s:.1f} s")
            raw = asyncio.run(train_and_measure_raw(url, root, tenant, game, args.items, settings, args.duration))
            env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEMETRICS_")}
            env.update({"GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(root),
                        "GAMEMETRICS_RECOMMENDER_CHECK_SECONDS": "86400"})
            issued = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "issue-token", "--tenant",
                                     str(tenant), "--scopes", "recommendations:read"], env=env, capture_output=True,
                                    text=True, check=True)
            token = json.loads(issued.stdout)["access_token"]
            started = time.perf_counter()
            server = start_server([sys.executable, "-m", "gamemetrics.cli", "serve", "recommender"], env, args.port,
                                  "/readyz")
            console.print(f"recommender ready in {time.perf_counter() - started:.1f} s")
            peak_rss = 0
            served = psutil.Process(server.pid)
            try:
                # One answer of each kind before any clock starts: the first of each reads what every
                # later one reuses (pooled connections, a segment's popular list).
                offset = 0
                for kind in ("uncached", "cold"):
                    figures = on_server(measure(args.port, game, token, 1, 1.0, kind=kind, players=args.players,
                                                offset=offset, server=served))
                    offset += int(figures["requests"])
                for kind in ("cached", "uncached", "cold"):
                    for clients in CLIENTS:
                        figures = on_server(measure(args.port, game, token, clients, args.duration, kind=kind,
                                                    players=args.players, offset=offset, server=served))
                        offset += int(figures["requests"])
                        rows.append((kind, clients, figures))
                        peak_rss = max(peak_rss, psutil.Process(server.pid).memory_info().rss)
            finally:
                server.terminate()
                server.wait(30)
        hello = start_server([sys.executable, __file__, "--hello", str(args.port)], env, args.port, "/readyz")
        try:
            for clients in CLIENTS:
                rows.append(("raw HTTP", clients, on_server(measure(args.port, game, token, clients, args.duration,
                                                                    kind="uncached", players=1, offset=0,
                                                                    server=psutil.Process(hello.pid)))))
        finally:
            hello.terminate()
            hello.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_figures(args, settings, rows, raw, peak_rss)


Row = tuple[str, int, dict[str, float]]


def print_figures(args: argparse.Namespace, settings: RecommenderSettings, rows: list[Row], raw: dict[str, float],
                  peak_rss: int) -> None:
    hello = {clients: f["per_s"] for kind, clients, f in rows if kind == "raw HTTP"}
    table = Table(title=f"recommender: {args.players:,} players × {args.items:,} items, {args.interactions:,}"
                        f" interactions, {os.cpu_count()} cores")
    for column in ("answers", "clients", "req/s", "of raw HTTP", "p50 ms", "p99 ms", "server CPU µs/req", "failed"):
        table.add_column(column, justify="right")
    for kind, clients, f in rows:
        table.add_row(kind, str(clients), f"{f['per_s']:,.0f}", f"{f['per_s'] / hello[clients]:.2f}",
                      f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}", f"{f['server_cpu_us']:,.0f}",
                      str(int(f["failures"])))
    console.print(table)
    console.print("raw HTTP: a Starlette route answering a body of the same size on uvicorn as the service runs,"
                  " through the same load generator; server CPU: the server process's CPU time per request")
    console.print(f"training: {raw['train_s']:.1f} s ({raw['fit_s']:.1f} s fitting {settings.recommender_algorithm}"
                  f" with {settings.recommender_factors} factors, the rest storing vectors)")
    console.print(f"raw, one client in-process: the same filtered search through the Vectors port"
                  f" {raw['vectors_port_queries_per_s']:,.0f}/s, through Qdrant's local mode itself"
                  f" {raw['qdrant_local_queries_per_s']:,.0f}/s; numpy's top 10 of the item matrix alone"
                  f" {raw['numpy_topk_per_s']:,.0f}/s; an in-process cache read alone"
                  f" {raw['cache_reads_per_s']:,.0f}/s")
    console.print(f"server peak RSS {peak_rss / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
