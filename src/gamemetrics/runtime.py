"""Wiring: settings → database URL, pool and bus. Services get these when they are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from collections.abc import Iterator
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.ports import bus as topics
from gamemetrics.settings import Settings

EMBEDDED_DATABASE = "gamemetrics"


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partition counts of the architecture's topics."""
    wide = settings.bus_partitions
    return {
        topics.RAW_EVENTS: wide,
        topics.PROCESSED_EVENTS: wide,
        topics.EVENTS_DLQ: 2,
        topics.NOTIFICATION_REQUESTS: 4,
        topics.NOTIFICATIONS_DLQ: 2,
        topics.GDPR_REQUESTS: 4,
    }


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one (started here, stopped when no process uses it)."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir)
    try:
        yield server.ensure_database(EMBEDDED_DATABASE)
    finally:
        server.stop()


@dataclass(slots=True)
class Platform:
    """The shared infrastructure one process talks to."""

    url: str
    pool: AsyncConnectionPool
    bus: PgLogBus


@asynccontextmanager
async def connect(settings: Settings, url: str, *, name: str, pool_size: int = 8) -> AsyncIterator[Platform]:
    """Open the pool and bus, make sure the topics exist, close both on exit."""
    pool = await open_pool(url, max_size=pool_size, name=name)
    bus = PgLogBus(url, pool, topic_partitions(settings))
    try:
        await bus.create_topics(topic_partitions(settings))
        yield Platform(url, pool, bus)
    finally:
        await bus.close()
        await pool.close()
