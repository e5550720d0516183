"""Batch statements are always planned with their real arrays, never with a cached generic plan."""

from __future__ import annotations

from gamemetrics.adapters.pglog.consumer import PgLogConsumer
from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import Platform


async def test_pool_connections_plan_every_run_with_its_values(platform: Platform) -> None:
    # psycopg prepares a statement on its fifth run; with a generic plan a 5,000-key
    # `player_id = ANY($1)` turned from a hashed lookup into a linear scan per row.
    async with platform.pool.connection() as conn:
        for _ in range(6):
            await conn.execute("SELECT 1 WHERE 'a' = ANY(%s)", (["a", "b"],))
        cur = await conn.execute("SHOW plan_cache_mode")
        assert await cur.fetchone() == ("force_custom_plan",)


async def test_the_embedded_consumer_plans_every_run_with_its_values(platform: Platform, database_url: str) -> None:
    consumer = platform.bus.consumer("plans", [RAW_EVENTS])
    assert isinstance(consumer, PgLogConsumer)
    await consumer.poll(10, 0.0)
    connection = await consumer._connection()
    cur = await connection.execute("SHOW plan_cache_mode")
    assert await cur.fetchone() == ("force_custom_plan",)
    await consumer.close()
