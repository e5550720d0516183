"""`gamemetrics simulate` and `gamemetrics import` against running ingest and processor services.

The services run as real subprocesses on a database of their own; the write-key rate is set low
(1000 events/s, bursts of 500) so the simulator's history meets real 429 answers and must wait
them out.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from rich.console import Console

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.importer import import_file
from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import connect
from gamemetrics.services.processor.worker import GROUP_ID
from gamemetrics.settings import Settings
from gamemetrics.simulator.model import rfc3339
from gamemetrics.simulator.run import SimulateOptions, run_simulation, simulation_for
from gamemetrics.tenancy.store import CreatedKey, TenancyStore
from tests.conftest import TEMPLATE, free_port

SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class Stack:
    base_url: str
    database_url: str


@pytest.fixture(scope="module")
def stack(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Ingest and processor serving one database for the module."""
    name = f"gm_simulate_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = pg_server.url(name)
    data_dir = tmp_path_factory.mktemp("services")
    port = free_port()
    env = {
        **os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_PORT": str(port),
        "GAMEMETRICS_DATA_DIR": str(data_dir), "GAMEMETRICS_LOG_LEVEL": "warning",
        "GAMEMETRICS_KEY_RATE_EVENTS_PER_SECOND": "1000", "GAMEMETRICS_KEY_RATE_BURST_EVENTS": "500",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    children = {
        service: subprocess.Popen(
            [sys.executable, "-m", "gamemetrics.cli", "serve", service], env=env,
            stdout=(data_dir / f"{service}.log").open("wb"), stderr=subprocess.STDOUT,
        )
        for service in ("ingest", "processor")
    }
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, children, data_dir)
        yield Stack(base_url, url)
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_ready(base_url: str, children: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for service, child in children.items():
            if child.poll() is not None:
                log = (logs / f"{service}.log").read_text()[-3000:]
                pytest.fail(f"{service} exited with {child.returncode}:\n{log}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"ingest was not ready at {base_url}")


def make_keys(stack: Stack, *allow_import: bool) -> list[CreatedKey]:
    """A new tenant and game, with one key per flag."""

    async def work() -> list[CreatedKey]:
        settings = Settings(database_url=stack.database_url)
        async with connect(settings, stack.database_url, name="test-keys", pool_size=1) as platform:
            store = TenancyStore(platform.pool)
            tenant = await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}")
            game = await store.create_game(tenant, "game")
            return [await store.create_write_key(game, allow_import=flag) for flag in allow_import]

    return asyncio.run(work())


def query(stack: Stack, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def wait_processed(stack: Stack) -> None:
    """Until the processor has committed every raw record ingest appended (each stored or dropped as a repeat)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    lag = None
    while time.monotonic() < deadline:
        ((lag,),) = query(
            stack,
            "SELECT coalesce(sum(b.next_offset - coalesce(o.next_offset, 0)), 0) FROM bus_partitions b"
            " LEFT JOIN bus_offsets o ON o.topic = b.topic AND o.partition = b.partition AND o.group_id = %s"
            " WHERE b.topic = %s",
            GROUP_ID, RAW_EVENTS,
        )
        if lag == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"the processor still had {lag} raw records to go")


def stored(stack: Stack, tenant: uuid.UUID) -> tuple[int, int]:
    ((rows, distinct),) = query(
        stack, "SELECT count(*), count(DISTINCT event_id) FROM events WHERE tenant_id = %s", tenant
    )
    return rows, distinct


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gamemetrics.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_simulate_stores_history_through_import_and_today_live(stack: Stack) -> None:
    live_key, import_key = make_keys(stack, False, True)
    options = SimulateOptions(url=stack.base_url, write_key=live_key.write_key, import_key=import_key.write_key,
                              players=60, days=3, rate=400.0, seed=5)
    now = datetime.now(UTC)
    report = run_simulation(options, now=now, console=Console(file=io.StringIO()))

    # The same options and clock give the same events: that is what must be stored.
    days = options.days + 1
    generated = [e for _, day in zip(range(days), simulation_for(options, now).days(), strict=False)
                 for e in day.events]
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    history = [e for e in generated if e["timestamp"] < rfc3339(midnight)]
    today = [e for e in generated if rfc3339(midnight) <= e["timestamp"] <= rfc3339(now)]
    assert report.rejected == 0, report.history.reasons + report.live.reasons
    assert report.history.accepted == len(history) > 500
    assert report.live.accepted == len(today)
    assert report.history.retries > 0  # the key's rate forced waits, and the sender waited them out

    wait_processed(stack)
    tenant = live_key.tenant_id
    assert stored(stack, tenant) == (len(history) + len(today),) * 2
    rows = query(stack, "SELECT event_id::text, source, event_time FROM events WHERE tenant_id = %s", tenant)
    assert {r[0] for r in rows} == {e["event_id"] for e in history + today}
    past = [r for r in rows if r[2] < midnight]
    assert len(past) == len(history)
    assert {r[1] for r in past} == {"import"}
    assert {r[1] for r in rows if r[2] >= midnight} <= {"live"}
    assert {r[2].date() for r in past} == {(midnight - timedelta(days=d)).date() for d in (1, 2, 3)}
    ((players, dead),) = query(
        stack, "SELECT (SELECT count(*) FROM players WHERE tenant_id = %s),"
        " (SELECT count(*) FROM dead_letters WHERE tenant_id = %s)", tenant, tenant,
    )
    assert players == len({e["player_id"] for e in history + today})
    assert dead == 0
    ((history_days,),) = query(
        stack, "SELECT count(DISTINCT day) FROM player_days WHERE tenant_id = %s AND day < %s", tenant, midnight.date()
    )
    assert history_days == 3


def test_simulate_command_prints_a_summary_and_refuses_history_without_an_import_key(stack: Stack) -> None:
    live_only, importer = make_keys(stack, False, True)
    ok = cli("simulate", "--write-key", importer.write_key, "--players", "6", "--days", "1", "--rate", "0",
             "--url", stack.base_url, "--seed", "9")
    assert ok.returncode == 0, ok.stderr
    assert "rejected 0" in ok.stdout and "total: sent" in ok.stdout
    refused = cli("simulate", "--write-key", live_only.write_key, "--players", "6", "--days", "1",
                  "--url", stack.base_url)
    assert refused.returncode == 1
    assert "403" in refused.stderr and "--allow-import" in refused.stderr


def native_events(count: int, days_ago: int) -> list[dict]:
    base = datetime.now(UTC) - timedelta(days=days_ago)
    return [
        {"event_id": str(uuid.uuid4()), "event_type": "level_complete", "player_id": f"imported-{i % 7}",
         "timestamp": (base + timedelta(minutes=i)).isoformat(), "properties": {"level": i, "score": 10 * i},
         "context": {"platform": "ios", "country": "DE"}}
        for i in range(count)
    ]


def segment_messages(count: int, days_ago: int, prefix: str) -> list[dict]:
    base = datetime.now(UTC) - timedelta(days=days_ago)
    messages: list[dict] = []
    for i in range(count):
        when = (base + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        common = {"messageId": f"{prefix}-{i}", "timestamp": when,
                  "sentAt": (base + timedelta(days=2)).isoformat(), "context": {"locale": "fr-FR"}}
        if i % 4 == 0:
            messages.append({**common, "type": "identify", "userId": f"{prefix}-user-{i % 5}",
                             "traits": {"plan": "gold"}})
        elif i % 4 == 1:
            messages.append({**common, "type": "track", "anonymousId": f"{prefix}-anon-{i % 3}",
                             "event": "Order Completed", "properties": {"revenue": 4.99, "currency": "EUR",
                                                                        "order_id": f"o-{i}"}})
        else:
            messages.append({**common, "type": "track", "userId": f"{prefix}-user-{i % 5}",
                             "event": "Level Completed" if i % 4 == 2 else "Boss Defeated",
                             "properties": {"level": i}})
    return messages


def test_import_files_store_each_event_once_even_when_imported_twice(stack: Stack, tmp_path: Path) -> None:
    (key,) = make_keys(stack, True)
    natives = native_events(40, days_ago=40)
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text("\n".join(json.dumps(e) for e in natives[:25]) + "\n\n")
    ndjson_gz = tmp_path / "more.ndjson.gz"
    ndjson_gz.write_bytes(gzip.compress("\n".join(json.dumps(e) for e in natives[25:]).encode()))
    lines = segment_messages(30, days_ago=30, prefix="lines")
    segment_lines = tmp_path / "segment.jsonl"
    segment_lines.write_text("\n".join(json.dumps(m) for m in lines) + "\n")
    batch = segment_messages(12, days_ago=20, prefix="batch")
    segment_batch = tmp_path / "segment-batch.json"
    segment_batch.write_text(json.dumps({"batch": batch}, indent=2))
    files = {ndjson: 25, ndjson_gz: 15, segment_lines: 30, segment_batch: 12}

    for path, count in files.items():
        run = cli("import", str(path), "--write-key", key.write_key, "--url", stack.base_url)
        assert run.returncode == 0, (path.name, run.stdout, run.stderr)
        assert f"accepted {count}, rejected 0" in run.stdout
    wait_processed(stack)
    assert stored(stack, key.tenant_id) == (82, 82)
    # Again, in process this time (the command's code without its start-up): ingest takes every
    # event again, the processor drops them all as repeats.
    for path, count in files.items():
        report = import_file(path, url=stack.base_url, write_key=key.write_key, console=Console(file=io.StringIO()))
        assert (report.accepted, report.rejected, report.format) == (
            count, 0, "segment-batch" if path == segment_batch else "segment" if path == segment_lines else "ndjson"
        )
    wait_processed(stack)
    assert stored(stack, key.tenant_id) == (82, 82)

    rows = dict(query(stack, "SELECT event_id::text, event_time FROM events WHERE tenant_id = %s", key.tenant_id))
    for event in natives:
        assert rows[event["event_id"]] == datetime.fromisoformat(event["timestamp"])
    # Export times are kept as written: no live clock-skew correction from `sentAt`.
    earliest = min(v for v in rows.values() if v > datetime.now(UTC) - timedelta(days=31))
    assert earliest == datetime.fromisoformat(lines[0]["timestamp"].replace("Z", "+00:00"))
    ((counted, traits),) = query(
        stack, "SELECT (SELECT events_stored FROM game_counters WHERE tenant_id = %s),"
        " (SELECT count(*) FROM players WHERE tenant_id = %s AND traits->>'plan' = 'gold')",
        key.tenant_id, key.tenant_id,
    )
    assert counted == 82
    assert traits == 5 + 3  # identify calls of the two Segment files reached the profiles
    ((revenue,),) = query(stack, "SELECT sum(revenue_usd) FROM events WHERE tenant_id = %s AND event_type = 'purchase'",
                          key.tenant_id)
    purchases = sum(1 for m in lines + batch if m.get("event") == "Order Completed")
    assert float(revenue) == pytest.approx(purchases * 4.99 * 1.08, abs=0.01)


def test_import_names_the_lines_it_rejected_and_fails(stack: Stack, tmp_path: Path) -> None:
    (key,) = make_keys(stack, True)
    good = native_events(3, days_ago=12)
    unknown_type = {**native_events(1, days_ago=12)[0], "event_type": "teleported"}
    no_id = {k: v for k, v in native_events(1, days_ago=12)[0].items() if k != "event_id"}
    lines = [json.dumps(good[0]), "{not json", json.dumps(unknown_type), json.dumps(good[1]), json.dumps(no_id),
             json.dumps(good[2]), *["[1, 2]"] * 25]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")

    run = cli("import", str(path), "--write-key", key.write_key, "--url", stack.base_url, "--format", "ndjson")
    assert run.returncode == 1
    assert "accepted 3, rejected 28" in run.stdout
    assert "line 2: not valid JSON" in run.stdout
    assert "line 3: unknown event_type 'teleported'" in run.stdout
    assert "line 5:" in run.stdout and "event_id" in run.stdout
    assert "line 7: a line must hold one JSON object" in run.stdout
    assert "... and 8 more" in run.stdout  # the list is bounded
    wait_processed(stack)
    assert stored(stack, key.tenant_id) == (3, 3)
