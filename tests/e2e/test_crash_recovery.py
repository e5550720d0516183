"""Chaos: SIGKILL a service in the middle of a stream, restart it, and find every acknowledged
event stored exactly once, with rollups that agree with the events table.

The services run as real processes (`gamemetrics serve ingest|processor`) on the test's database;
a client streams batches over HTTP, resending some of them as retrying SDKs do.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.tenancy.store import CreatedKey
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BATCH = 500
PLAYERS = 300
BUS_PARTITIONS = 4
# Small processor batches: many transactions, so a kill lands inside one more often than not.
PROCESSOR_BATCH = 150
# Each kill lands inside a sink transaction about half the time; six make a lost batch hard to miss.
PROCESSOR_KILLS = 6
# Every bounded wait in this file gives up after this long and fails with what it saw.
PATIENCE_S = 45.0


# ---------------------------------------------------------------- the services, as processes


@dataclass
class Service:
    """One `gamemetrics serve <name>` child process; its output goes to a log file."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gamemetrics.cli", "serve", self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, open transactions are cut off."""
        assert self.process is not None and self.process.poll() is None, self.describe("died before the kill")
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe(self, what: str) -> str:
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        return f"{self.name} {what}; last output:\n{tail}"


@dataclass
class Deployment:
    ingest: Service
    processor: Service
    base_url: str
    database_url: str

    async def wait_ready(self) -> None:
        await wait_until_ready(self.ingest, self.base_url)


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    port = free_port()
    env = {
        **os.environ,
        "GAMEMETRICS_DATABASE_URL": database_url,
        "GAMEMETRICS_DATA_DIR": str(tmp_path),
        "GAMEMETRICS_HOST": "127.0.0.1",
        "GAMEMETRICS_PORT": str(port),
        "GAMEMETRICS_BUS_PARTITIONS": str(BUS_PARTITIONS),
        "GAMEMETRICS_PROCESSOR_BATCH_EVENTS": str(PROCESSOR_BATCH),
        "GAMEMETRICS_LOG_LEVEL": "warning",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    deployed = Deployment(
        Service("ingest", env, tmp_path / "ingest.log"),
        Service("processor", env, tmp_path / "processor.log"),
        f"http://127.0.0.1:{port}",
        database_url,
    )
    try:
        yield deployed
    finally:
        deployed.ingest.stop()
        deployed.processor.stop()


# ---------------------------------------------------------------- the stream


def make_event(rng: random.Random, now: datetime, player: int) -> dict[str, Any]:
    """One valid event of a mixed game: sessions, levels, purchases, items, identify calls."""
    # Spread over the last ~30 hours: several day partitions and many minutes, all inside the live window.
    at = now - timedelta(seconds=rng.randrange(0, 30 * 3600))
    event: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "player_id": f"player-{player}",
        "timestamp": at.isoformat(),
        "context": {
            "platform": rng.choice(["iOS", "android", "Steam"]), "country": rng.choice(["de", "US", "jp"]),
        },
    }
    kind = rng.random()
    if kind < 0.15:
        event.update(event_type="session_start")
    elif kind < 0.25:
        event.update(event_type="session_end", properties={"duration_seconds": rng.randrange(10, 3600)})
    elif kind < 0.45:
        event.update(event_type="level_complete",
                     properties={"level": rng.randrange(1, 50), "score": rng.random()})
    elif kind < 0.55:
        event.update(event_type="purchase", properties={
            "item_id": f"gems_{rng.randrange(5)}", "price": rng.choice([0.99, 4.99, 19.99, 120]),
            "currency": rng.choice(["USD", "EUR", "JPY"]), "quantity": rng.randrange(1, 4),
        })
    elif kind < 0.65:
        event.update(event_type="item_acquired", properties={"item_id": f"sword_{rng.randrange(9)}"})
    elif kind < 0.72:
        event.update(event_type="identify",
                     properties={"level": rng.randrange(1, 50), "vip": rng.random() < 0.1})
    else:
        event.update(event_type="custom", name=rng.choice(["tutorial_step", "chest_opened"]))
    if rng.random() < 0.2:
        event["session_id"] = f"s-{player}-{rng.randrange(3)}"
    return event


def make_requests(seed: int, batches: int) -> Iterator[list[dict[str, Any]]]:
    """Request bodies in send order; some repeat earlier events, as a client retrying after a lost answer."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    recent: list[list[dict[str, Any]]] = []
    for index in range(batches):
        batch = [make_event(rng, now, rng.randrange(PLAYERS)) for _ in range(BATCH)]
        recent = [*recent[-4:], batch]
        yield batch
        if index % 6 == 5:  # an earlier request again, byte for byte
            yield recent[-1 - rng.randrange(1, len(recent))]
        if index % 9 == 8:  # a new request mixing resent events with new ones
            yield rng.sample(recent[-2], BATCH // 2) + [
                make_event(rng, now, rng.randrange(PLAYERS)) for _ in range(BATCH // 2)
            ]


async def wait_until_ready(ingest: Service, base_url: str) -> None:
    """Until ingest answers /readyz (bounded); fail at once if it exited."""
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    async with httpx.AsyncClient(timeout=3.0) as client:
        while asyncio.get_running_loop().time() < deadline:
            assert ingest.alive(), ingest.describe("exited while starting")
            try:
                if (await client.get(f"{base_url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(ingest.describe(f"was not ready within {PATIENCE_S:.0f}s"))


@dataclass
class Client:
    """Sends requests until each gets a 200, retrying transport errors and 503s with the same body."""

    base_url: str
    write_key: str
    acknowledged: set[str] = field(default_factory=set)
    accepted_total: int = 0
    requests_ok: int = 0
    transport_errors: int = 0
    unavailable: int = 0  # 503 answers: the bus could not take a batch

    async def send_all(
        self, requests: Iterable[list[dict[str, Any]]], *, pause: float = 0.0,
        until: asyncio.Event | None = None, then: int = 0,
    ) -> None:
        """Send every request, or stop `then` requests after `until` is set, whichever comes first."""
        headers = {"Authorization": f"Bearer {self.write_key}"}
        async with httpx.AsyncClient(timeout=30.0, headers=headers) as http:
            for events in requests:
                if until is not None and until.is_set():
                    if then <= 0:
                        return
                    then -= 1
                await self._send(http, events)
                if pause:
                    await asyncio.sleep(pause)

    async def _send(self, http: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while True:
            try:
                response = await http.post(f"{self.base_url}/v1/events", json={"events": events})
            except httpx.TransportError:
                self.transport_errors += 1  # the service died under us: retry the same events
                response = None
            if response is not None and response.status_code == 200:
                answer = response.json()
                assert answer["rejected"] == [], answer["rejected"][:3]
                assert answer["accepted"] == len(events), answer
                self.acknowledged.update(e["event_id"] for e in events)
                self.accepted_total += answer["accepted"]
                self.requests_ok += 1
                return
            if response is not None:
                assert response.status_code == 503, (response.status_code, response.text)
                self.unavailable += 1
            assert asyncio.get_running_loop().time() < deadline, "a request could not be delivered in time"
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------- what the database says


async def stored_count(url: str, tenant_id: uuid.UUID) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(events_stored), 0) FROM game_counters WHERE tenant_id = %s", (tenant_id,)
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def raw_lag(url: str) -> tuple[int, int]:
    """(events appended to the raw topic, of which the processor group has not committed)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(b.next_offset), 0),"
            " coalesce(sum(b.next_offset - coalesce(o.next_offset, 0)), 0)"
            " FROM bus_partitions b LEFT JOIN bus_offsets o"
            "  ON o.group_id = 'processor' AND o.topic = b.topic AND o.partition = b.partition"
            " WHERE b.topic = %s",
            (RAW_EVENTS,),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def wait_for(check: Any, what: str, service: Service) -> None:
    """Poll `check()` until true, bounded; the failure names what was awaited and shows the service's log."""
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not await check():
        assert service.alive(), service.describe(f"exited while waiting for {what}")
        assert asyncio.get_running_loop().time() < deadline, service.describe(f"never reached: {what}")
        await asyncio.sleep(0.05)


async def wait_until_drained(deployment: Deployment) -> None:
    async def drained() -> bool:
        _, lag = await raw_lag(deployment.database_url)
        return lag == 0

    await wait_for(drained, "a lag of 0", deployment.processor)


async def assert_stored_exactly_once(url: str, key: CreatedKey, acknowledged: set[str]) -> None:
    """The acknowledged ids are the stored ids, each once, and every rollup agrees with `events`."""
    tenant = key.tenant_id
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

        async def one(sql: str) -> Any:
            cur = await conn.execute(sql, {"tenant": tenant})
            row = await cur.fetchone()
            assert row is not None
            return row[0] if len(row) == 1 else row

        cur = await conn.execute(
            "SELECT event_id::text FROM events WHERE tenant_id = %(tenant)s", {"tenant": tenant}
        )
        stored_ids = [r[0] for r in await cur.fetchall()]
        missing = acknowledged - set(stored_ids)
        extra = set(stored_ids) - acknowledged
        assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{len(extra)} stored events were never acknowledged, e.g. {sorted(extra)[:3]}"
        assert len(stored_ids) == len(set(stored_ids)) == len(acknowledged), "an event is stored twice"
        stored = len(stored_ids)

        assert await one("SELECT count(*) FROM event_ids WHERE tenant_id = %(tenant)s") == stored
        assert await one(
            "SELECT events_stored, events_dead_lettered FROM game_counters WHERE tenant_id = %(tenant)s"
        ) == (stored, 0)
        assert await one("SELECT count(*) FROM dead_letters") == 0

        # Each rollup equals the same figure recomputed from the events table, row by row.
        comparisons = {
            "player_days": (
                "SELECT (event_time AT TIME ZONE 'UTC')::date, player_id, count(*),"
                " count(*) FILTER (WHERE event_type = 'session_start'),"
                " coalesce(sum((properties->>'duration_seconds')::numeric)"
                "   FILTER (WHERE event_type = 'session_end'), 0)::bigint,"
                " count(*) FILTER (WHERE event_type = 'purchase'),"
                " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0),"
                " min(event_time), max(event_time)"
                " FROM events WHERE tenant_id = %(tenant)s AND event_type <> 'identify' GROUP BY 1, 2",
                "SELECT day, player_id, events, sessions, playtime_seconds, purchases, revenue_usd,"
                " first_event_at, last_event_at FROM player_days WHERE tenant_id = %(tenant)s",
            ),
            "minute_stats": (
                "SELECT date_trunc('minute', event_time), event_type, count(*), coalesce(sum(revenue_usd), 0)"
                " FROM events WHERE tenant_id = %(tenant)s GROUP BY 1, 2",
                "SELECT minute, event_type, events, revenue_usd FROM minute_stats"
                " WHERE tenant_id = %(tenant)s",
            ),
            "players": (
                "SELECT player_id, count(*), count(*) FILTER (WHERE event_type = 'session_start'),"
                " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0),"
                " min(event_time), max(event_time)"
                " FROM events WHERE tenant_id = %(tenant)s GROUP BY 1",
                "SELECT player_id, events, sessions, lifetime_revenue_usd, first_seen, last_seen"
                " FROM players WHERE tenant_id = %(tenant)s",
            ),
            "sessions": (
                "SELECT session_id, count(*), min(event_time), max(event_time)"
                " FROM events WHERE tenant_id = %(tenant)s AND event_type <> 'identify' GROUP BY 1",
                "SELECT session_id, events, started_at, ended_at FROM sessions WHERE tenant_id = %(tenant)s",
            ),
            "players (first day, best score)": (
                "SELECT player_id,"
                " min((event_time AT TIME ZONE 'UTC')::date) FILTER (WHERE event_type <> 'identify'),"
                " max((properties->>'score')::numeric) FILTER (WHERE event_type = 'level_complete'"
                "   AND jsonb_typeof(properties->'score') = 'number')"
                " FROM events WHERE tenant_id = %(tenant)s GROUP BY 1",
                "SELECT player_id, first_day, best_score FROM players WHERE tenant_id = %(tenant)s",
            ),
            "game_days": (
                "SELECT (event_time AT TIME ZONE 'UTC')::date, count(DISTINCT player_id),"
                " count(DISTINCT player_id) FILTER (WHERE event_type = 'purchase' AND revenue_usd > 0),"
                " count(*) FILTER (WHERE event_type = 'purchase'),"
                " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0)"
                " FROM events WHERE tenant_id = %(tenant)s AND event_type <> 'identify' GROUP BY 1",
                "SELECT day, active_players, payers, purchases, revenue_usd FROM game_days"
                " WHERE tenant_id = %(tenant)s",
            ),
            "event_days": (
                "SELECT (event_time AT TIME ZONE 'UTC')::date, event_type, coalesce(event_name, ''), count(*),"
                " coalesce(sum(revenue_usd), 0) FROM events WHERE tenant_id = %(tenant)s GROUP BY 1, 2, 3",
                "SELECT day, event_type, event_name, events, revenue_usd FROM event_days"
                " WHERE tenant_id = %(tenant)s",
            ),
        }
        for table, (expected, actual) in comparisons.items():
            differing = await one(
                f"SELECT count(*) FROM (({expected} EXCEPT ALL {actual})"
                f" UNION ALL ({actual} EXCEPT ALL {expected})) d"
            )
            assert differing == 0, f"{table}: {differing} rows disagree with the events table"

        assert await one(
            "SELECT coalesce(sum(events), 0) FROM player_days WHERE tenant_id = %(tenant)s"
        ) == await one(
            "SELECT count(*) FROM events WHERE tenant_id = %(tenant)s AND event_type <> 'identify'"
        )
        assert await one(
            "SELECT count(*) FROM events WHERE tenant_id = %(tenant)s AND session_id IS NULL"
        ) == 0
        # Replays must not flag a player as new twice: exactly one first event per player.
        assert await one(
            "SELECT count(*) FROM (SELECT player_id FROM events WHERE tenant_id = %(tenant)s"
            " GROUP BY 1 HAVING count(*) FILTER (WHERE is_new_player) <> 1) p"
        ) == 0


# ---------------------------------------------------------------- the tests


async def test_processor_killed_mid_stream_loses_and_doubles_nothing(
    deployment: Deployment, write_key: CreatedKey
) -> None:
    deployment.ingest.start()
    deployment.processor.start()
    await deployment.wait_ready()
    client = Client(deployment.base_url, write_key.write_key)
    # The stream keeps arriving while the processor is killed and restarted, however fast either
    # runs here, and ends a few requests after the last restart (or at its bound on a slow machine).
    chaos_over = asyncio.Event()
    stream = asyncio.create_task(
        client.send_all(make_requests(seed=7, batches=100), pause=0.1, until=chaos_over, then=8)
    )

    url, tenant = deployment.database_url, write_key.tenant_id
    kills = 0
    for _ in range(PROCESSOR_KILLS):
        before = await stored_count(url, tenant)

        async def storing(before: int = before) -> bool:
            # Kill only while the stored count moves and work is still waiting: mid-batch, not idle.
            return await stored_count(url, tenant) > before and (await raw_lag(url))[1] > 0

        await wait_for(storing, "stored events moving with work still queued", deployment.processor)
        await asyncio.sleep(random.uniform(0.0, 0.3))
        deployment.processor.kill()
        kills += 1
        deployment.processor.start()
    chaos_over.set()

    await asyncio.wait_for(stream, PATIENCE_S)
    await wait_until_drained(deployment)

    assert kills == PROCESSOR_KILLS and deployment.processor.starts == PROCESSOR_KILLS + 1
    appended, _ = await raw_lag(url)
    # Ingest was never killed, so the raw topic holds each accepted event once per acknowledging request.
    assert appended == client.accepted_total
    assert client.accepted_total > len(client.acknowledged), "no events were resent; the test proves less"
    await assert_stored_exactly_once(url, write_key, client.acknowledged)


async def test_ingest_killed_mid_stream_stores_each_acknowledged_event_once(
    deployment: Deployment, write_key: CreatedKey
) -> None:
    requests = list(make_requests(seed=11, batches=60))
    deployment.ingest.start()
    deployment.processor.start()
    await deployment.wait_ready()
    # Three clients at once, so requests are in flight when ingest dies.
    clients = [Client(deployment.base_url, write_key.write_key) for _ in range(3)]
    streams = [
        asyncio.create_task(client.send_all(requests[i::3], pause=0.05)) for i, client in enumerate(clients)
    ]

    def acknowledged_requests() -> int:
        return sum(c.requests_ok for c in clients)

    kills = 0
    for _ in range(3):
        before = acknowledged_requests()

        async def answering(before: int = before) -> bool:
            return acknowledged_requests() >= before + 8

        await wait_for(answering, "requests being acknowledged", deployment.ingest)
        await asyncio.sleep(random.uniform(0.0, 0.1))
        deployment.ingest.kill()
        kills += 1
        deployment.ingest.start()
        await deployment.wait_ready()

    await asyncio.wait_for(asyncio.gather(*streams), PATIENCE_S)
    await wait_until_drained(deployment)

    assert kills == 3 and deployment.ingest.starts == 4
    assert all(not s.exception() for s in streams)
    appended, _ = await raw_lag(deployment.database_url)
    # Every 200 stands for a durable append; answers lost with a killed ingest add copies, never gaps.
    assert appended >= sum(c.accepted_total for c in clients)
    acknowledged = set().union(*(c.acknowledged for c in clients))
    assert acknowledged == {e["event_id"] for events in requests for e in events}
    await assert_stored_exactly_once(deployment.database_url, write_key, acknowledged)
