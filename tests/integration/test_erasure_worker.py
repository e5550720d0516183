"""The erasure worker against a real database: it waits for a processor batch in flight (which
holds the erasure lock shared) and then deletes what that batch wrote; a request delivered twice
erases twice and completes once; a request it cannot open is skipped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from gamemetrics.audit import AuditLog
from gamemetrics.events.gdpr_requests import ErasureRequest, RequestCodec
from gamemetrics.gdpr.consumer import ErasureConsumer
from gamemetrics.gdpr.tombstones import ERASURE_LOCK, Tombstones
from gamemetrics.ports.bus import GDPR_REQUESTS, Record
from gamemetrics.runtime import Platform
from gamemetrics.services.users.eraser import StoreEraser
from gamemetrics.tenancy.store import TenancyStore

SECRET = b"w" * 48


async def test_erasure_waits_for_a_batch_in_flight_and_deletes_what_it_wrote(platform: Platform,
                                                                             database_url: str) -> None:
    store = TenancyStore(platform.pool)
    tenant = await store.create_tenant("studio")
    game = await store.create_game(tenant, "game")
    codec, tombstones = RequestCodec(SECRET), Tombstones(SECRET)
    worker = ErasureConsumer(platform.pool, platform.bus,
                             StoreEraser(platform.pool, platform.bus, bus_retention=timedelta(hours=1)),
                             expected=StoreEraser.stores, codec=codec, tombstones=tombstones, audit=AuditLog(SECRET))
    request = ErasureRequest(uuid.uuid4(), tenant, game, "in-flight", "client:test", datetime.now(UTC))
    message = codec.encode(request, tombstones.player_hash(tenant, game, "in-flight"))
    record = Record(GDPR_REQUESTS, 0, 0, message.key, message.value, {})

    async with await psycopg.AsyncConnection.connect(database_url) as batch:
        # A processor batch that started before the erasure: holds the lock shared, writes the player.
        await batch.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK,))
        await batch.execute(
            "INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen)"
            " VALUES (%s, %s, %s, now(), now())",
            (tenant, game, "in-flight"),
        )
        erasing = asyncio.create_task(worker.handle(record))
        await asyncio.sleep(0.5)
        assert not erasing.done(), "the erasure must wait for the batch that holds the lock"
        await batch.commit()
    await asyncio.wait_for(erasing, 30)

    async with platform.pool.connection() as conn:
        left = await (await conn.execute("SELECT count(*) FROM players WHERE player_id = 'in-flight'")).fetchone()
        tomb = await (await conn.execute("SELECT count(*) FROM erased_players WHERE tenant_id = %s",
                                         (tenant,))).fetchone()
        state = await (await conn.execute("SELECT completed_at IS NOT NULL, stores FROM erasures")).fetchone()
    assert left == (0,) and tomb == (1,)
    assert state is not None and state[0] and state[1]["profile"] == {"state": "erased", "rows": 1,
                                                                        "at": state[1]["profile"]["at"]}

    await worker.handle(record)  # delivered again: harmless, and completed once
    await worker.handle(Record(GDPR_REQUESTS, 0, 1, b"k", b"not a request", {}))  # skipped with a log line
    async with platform.pool.connection() as conn:
        audit = await (await conn.execute(
            "SELECT action, count(*) FROM audit_log GROUP BY 1 ORDER BY 1")).fetchall()
    assert audit == [("erasure.completed", 1)]
