"""Recommender benchmark: training time, then recommendations/s and p50/p99 latency over HTTP,
cached and uncached, at 1, 10 and 50 clients, the server's peak RSS, and beside them the raw rate
of the same Qdrant query and of a cache read alone.

    python bench/recommender.py [--players 100000] [--items 2000] [--interactions 5000000] [--duration 5]

It makes a database (embedded PostgreSQL in a temporary directory, or a new database on
GAMEMETRICS_DATABASE_URL's server), COPYs synthetic interactions with taste structure (each
player favours two of twenty categories) into the recommender's table, trains the model in this
process with the service's own trainer on Qdrant's local mode, measures the raw Qdrant query and
the in-process cache read, then closes Qdrant (local mode lets one process hold it) and starts
`gamemetrics serve recommender` on the same data dir, measured over HTTP with a token from
`gamemetrics admin issue-token`:

- cached: every client asks the same 100 players again and again (answers come from the cache);
- uncached: every request asks a player not asked before, so each one reads ownership, the
  player's vector and runs the filtered Qdrant search.

The load generator runs on the same machine. It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
from rich.console import Console
from rich.table import Table

from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.adapters.qdrant.vectors import local_vectors
from gamemetrics.migrations import upgrade
from gamemetrics.services.recommender.interactions import Interactions
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.training import Trainer
from gamemetrics.settings import RecommenderSettings

CATEGORIES = 20
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
    """A tenant and game with `interactions` taste-structured item events; (tenant, game, seconds)."""
    tenant, game = uuid.uuid4(), uuid.uuid4()
    rng = random.Random(1)
    per_category = max(1, items // CATEGORIES)
    started = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
        conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'bench')", (game, tenant))
        with conn.cursor().copy("COPY rec_interactions (tenant_id, event_id, game_id, player_id, item_id, event_type,"
                                " at, country, platform) FROM STDIN") as copy:
            for n in range(interactions):
                player = n % players
                favourites = (player * 7) % CATEGORIES, (player * 13 + 3) % CATEGORIES
                category = rng.choice(favourites) if rng.random() < 0.8 else rng.randrange(CATEGORIES)
                item = f"item-{category * per_category + rng.randrange(per_category)}"
                kind = rng.choices(("purchase", "item_acquired", "item_used"), (1, 4, 5))[0]
                copy.write_row((tenant, uuid.uuid4(), game, f"player-{player}", item, kind,
                                now - timedelta(minutes=rng.randrange(14 * 1440)), "DE", "ios"))
        conn.execute("INSERT INTO rec_items (tenant_id, game_id, item_id, category, price)"
                     " SELECT DISTINCT tenant_id, game_id, item_id, 'c' || (substr(item_id, 6)::int % 20),"
                     " (substr(item_id, 6)::int % 50) FROM rec_interactions")
        conn.execute("ANALYZE rec_interactions")
    return tenant, game, time.perf_counter() - started


async def train_and_measure_raw(url: str, data_dir: Path, tenant: uuid.UUID, game: uuid.UUID,
                                settings: RecommenderSettings, duration: float) -> dict[str, float]:
    """Train with the service's trainer; then the raw Qdrant query rate and the cache read rate."""
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
        count, deadline = 0, time.perf_counter() + duration
        begun = time.perf_counter()
        while time.perf_counter() < deadline:
            await vectors.search(model.items, player_vectors[count % len(player_vectors)], limit=10, where=where)
            count += 1
        phases["qdrant_queries_per_s"] = count / (time.perf_counter() - begun)
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


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "recommender"],
                               env={**env, "GAMEMETRICS_PORT": str(port)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the recommender did not become ready")


async def measure(base: str, game: uuid.UUID, token: str, clients: int, duration: float, *, cached: bool,
                  players: int, offset: int) -> dict[str, float]:
    """Requests/s and latency percentiles of `clients` concurrent clients for `duration` seconds."""
    latencies: list[float] = []
    failures = 0
    fresh = iter(range(offset, 10**9))
    deadline = time.perf_counter() + duration
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        async def client(n: int) -> None:
            nonlocal failures
            k = n
            while time.perf_counter() < deadline:
                player = k % 100 if cached else next(fresh) % players
                k += clients
                started = time.perf_counter()
                response = await http.get(f"/v1/games/{game}/players/player-{player}/recommendations?n=10")
                latencies.append(time.perf_counter() - started)
                failures += response.status_code != 200
        begun = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        took = time.perf_counter() - begun
    latencies.sort()
    return {"per_s": len(latencies) / took, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))], "failures": failures,
            "requests": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    settings = RecommenderSettings()
    root = Path(tempfile.mkdtemp(prefix="gm-bench-rec-"))
    try:
        with database(root) as url:
            tenant, game, load_s = load(url, args.players, args.items, args.interactions)
            console.print(f"loaded {args.interactions:,} interactions of {args.players:,} players × {args.items:,}"
                          f" items in {load_s:.1f} s")
            raw = asyncio.run(train_and_measure_raw(url, root, tenant, game, settings, args.duration))
            env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEMETRICS_")}
            env.update({"GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(root),
                        "GAMEMETRICS_RECOMMENDER_CHECK_SECONDS": "86400"})
            issued = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "issue-token", "--tenant",
                                     str(tenant), "--scopes", "recommendations:read"], env=env, capture_output=True,
                                    text=True, check=True)
            token = json.loads(issued.stdout)["access_token"]
            server = start_server(env, args.port)
            peak_rss = 0
            rows: list[tuple[str, int, dict[str, float]]] = []
            try:
                offset = 0
                for cached in (True, False):
                    for clients in (1, 10, 50):
                        figures = asyncio.run(measure(f"http://127.0.0.1:{args.port}", game, token, clients,
                                                      args.duration, cached=cached, players=args.players,
                                                      offset=offset))
                        offset += int(figures["requests"])
                        rows.append(("cached" if cached else "uncached", clients, figures))
                        peak_rss = max(peak_rss, psutil.Process(server.pid).memory_info().rss)
            finally:
                server.terminate()
                server.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = Table(title=f"recommender: {args.players:,} players × {args.items:,} items, {args.interactions:,}"
                        f" interactions, {os.cpu_count()} cores")
    for column in ("answers", "clients", "req/s", "p50 ms", "p99 ms", "failed"):
        table.add_column(column, justify="right")
    for kind, clients, f in rows:
        table.add_row(kind, str(clients), f"{f['per_s']:,.0f}", f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}",
                      str(int(f["failures"])))
    console.print(table)
    console.print(f"training: {raw['train_s']:.1f} s ({raw['fit_s']:.1f} s fitting {settings.recommender_algorithm}"
                  f" with {settings.recommender_factors} factors, the rest storing vectors)")
    console.print(f"raw: the same Qdrant query alone {raw['qdrant_queries_per_s']:,.0f}/s (one client, local mode);"
                  f" an in-process cache read alone {raw['cache_reads_per_s']:,.0f}/s")
    console.print(f"server peak RSS {peak_rss / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
