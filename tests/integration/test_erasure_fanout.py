"""The GDPR fan-out on both buses: two erasers, each in its own consumer group of `gdpr.requests`;
the erasure completes only once both have confirmed their stores, with one `erasure.completed`
audit entry; an eraser that fails leaves the erasure pending until its retry confirms."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gamemetrics.audit import AuditLog
from gamemetrics.consuming.backoff import Backoff
from gamemetrics.events.gdpr_requests import ErasureRequest, RequestCodec
from gamemetrics.gdpr.consumer import ErasureConsumer
from gamemetrics.gdpr.erasers import StoreState, expected_stores
from gamemetrics.gdpr.ledger import record_request
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.bus import GDPR_REQUESTS
from gamemetrics.runtime import Platform
from gamemetrics.services.users.eraser import StoreEraser
from gamemetrics.tenancy.store import TenancyStore
from tests.integration.test_bus_contract import PATIENCE_S

pytestmark = pytest.mark.timeout(120)

SECRET = b"f" * 48


class VectorEraser:
    """A second holder of player data: a table of player vectors, keyed by tombstone."""

    stores = ("player_vectors",)

    def __init__(self, platform: Platform, *, failures: int = 0) -> None:
        self.name = f"vectors-{uuid.uuid4().hex[:6]}"
        self._pool = platform.pool
        self._failures = failures
        self.attempts = 0
        self.gate = asyncio.Event()

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        self.attempts += 1
        await self.gate.wait()
        if self.attempts <= self._failures:
            raise ConnectionError("the vector store is away")
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM player_vectors WHERE player_hash = %s", (player_hash,))
        return {"player_vectors": StoreState("erased", rows=cur.rowcount)}


class Fanout:
    def __init__(self, platform: Platform, vectors: VectorEraser, *, retry_after: float = 0.05) -> None:
        self.platform = platform
        self.codec, self.tombstones, audit = RequestCodec(SECRET), Tombstones(SECRET), AuditLog(SECRET)
        erasers = [StoreEraser(platform.pool, platform.bus, bus_retention=timedelta(hours=1)), vectors]
        self.expected = expected_stores(erasers)
        self.consumers = [
            ErasureConsumer(platform.pool, platform.bus, eraser, expected=self.expected, codec=self.codec,
                            tombstones=self.tombstones, audit=audit, poll_timeout=0.2,
                            backoff=Backoff(retry_after, retry_after))
            for eraser in erasers
        ]

    async def player(self, player: str) -> ErasureRequest:
        store = TenancyStore(self.platform.pool)
        tenant = await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}")
        game = await store.create_game(tenant, "game")
        async with self.platform.pool.connection() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS player_vectors (player_hash bytea, vector float8[])")
            await conn.execute("INSERT INTO player_vectors VALUES (%s, '{0.5, 0.25}')",
                               (self.tombstones.player_hash(tenant, game, player),))
            await conn.execute("INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen)"
                               " VALUES (%s, %s, %s, now(), now())", (tenant, game, player))
        return ErasureRequest(uuid.uuid4(), tenant, game, player, "client:test", datetime.now(UTC))

    async def request(self, erasure: ErasureRequest, *, recorded: bool = True) -> None:
        """What the route does: the request on the bus, then recorded with every expected store pending."""
        player_hash = self.tombstones.player_hash(erasure.tenant_id, erasure.game_id, erasure.player_id)
        await self.platform.bus.producer().send(GDPR_REQUESTS, [self.codec.encode(erasure, player_hash)])
        if recorded:
            async with self.platform.pool.connection() as conn:
                await record_request(conn, erasure, player_hash, self.expected)

    async def state(self, erasure: ErasureRequest) -> tuple[bool, dict[str, Any], int]:
        """(completed, stores, erasure.completed audit entries) of the erasure."""
        async with self.platform.pool.connection() as conn:
            row = await (await conn.execute("SELECT completed_at IS NOT NULL, stores FROM erasures"
                                            " WHERE erasure_id = %s", (erasure.erasure_id,))).fetchone()
            (audited,) = await (await conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'erasure.completed' AND subject = %s",
                (str(erasure.erasure_id),))).fetchone() or (0,)
        return (row[0], row[1], audited) if row else (False, {}, audited)

    async def until(self, erasure: ErasureRequest, done: Any, what: str) -> tuple[bool, dict[str, Any], int]:
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while not done(state := await self.state(erasure)):
            assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}: {state}"
            await asyncio.sleep(0.05)
        return state


def _erased_by_the_store_eraser(state: tuple[bool, dict[str, Any], int]) -> bool:
    return all(state[1].get(s, {}).get("state") not in (None, "pending") for s in StoreEraser.stores)


async def test_an_erasure_completes_once_both_erasers_confirmed_in_their_own_groups(bus_platform: Platform) -> None:
    vectors = VectorEraser(bus_platform)
    fanout = Fanout(bus_platform, vectors)
    assert [c.group for c in fanout.consumers] == ["gdpr-erasure", f"gdpr-{vectors.name}"]
    erasure = await fanout.player("erase-me")
    await fanout.request(erasure)
    running = [asyncio.create_task(c.run()) for c in fanout.consumers]
    try:
        completed, stores, audited = await fanout.until(erasure, _erased_by_the_store_eraser, "the store eraser")
        await asyncio.sleep(0.3)
        completed, stores, audited = await fanout.state(erasure)
        assert not completed and audited == 0, "completed before every store confirmed"
        assert stores["player_vectors"] == {"state": "pending"} and stores["profile"]["rows"] == 1
        vectors.gate.set()
        completed, stores, audited = await fanout.until(erasure, lambda s: s[0], "completion")
    finally:
        for consumer in fanout.consumers:
            consumer.stop()
        await asyncio.wait_for(asyncio.gather(*running), PATIENCE_S)
    assert audited == 1
    assert stores["player_vectors"]["state"] == "erased" and stores["player_vectors"]["rows"] == 1
    assert set(stores) == set(fanout.expected)
    async with bus_platform.pool.connection() as conn:
        assert await (await conn.execute("SELECT count(*) FROM player_vectors")).fetchone() == (0,)


async def test_a_failing_eraser_leaves_the_erasure_pending_until_its_retry_confirms(bus_platform: Platform) -> None:
    vectors = VectorEraser(bus_platform, failures=1)
    fanout = Fanout(bus_platform, vectors, retry_after=1.0)
    group = f"gdpr-{vectors.name}"
    erasure = await fanout.player("erase-me-too")
    await fanout.request(erasure, recorded=False)  # the route died before recording it
    running = [asyncio.create_task(fanout.consumers[0].run())]
    try:
        completed, stores, audited = await fanout.until(erasure, _erased_by_the_store_eraser, "the store eraser")
        assert not completed and audited == 0 and stores["player_vectors"] == {"state": "pending"}
        assert set(stores) == set(fanout.expected)  # recorded by the eraser, with every expected store
        vectors.gate.set()
        running.append(asyncio.create_task(fanout.consumers[1].run()))
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while not REGISTRY.get_sample_value("gamemetrics_consumer_failures_total", {"group": group}):
            assert asyncio.get_running_loop().time() < deadline, "the vector eraser's failure was not counted"
            await asyncio.sleep(0.02)
        completed, stores, audited = await fanout.state(erasure)  # the retry is half a second away at least
        assert not completed and audited == 0 and stores["player_vectors"] == {"state": "pending"}
        completed, stores, audited = await fanout.until(erasure, lambda s: s[0], "completion after the retry")
    finally:
        for consumer in fanout.consumers:
            consumer.stop()
        await asyncio.wait_for(asyncio.gather(*running), PATIENCE_S)
    assert vectors.attempts == 2 and audited == 1
    assert stores["player_vectors"]["rows"] == 1
