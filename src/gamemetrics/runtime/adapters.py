"""Settings → database URL, pool and bus: the adapters a service is built on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from gamemetrics import registry
from gamemetrics.adapters.caching import open_caching
from gamemetrics.adapters.mail import make_fallback_mail, make_mail
from gamemetrics.adapters.objects.store import make_objects
from gamemetrics.adapters.pglog import PgLogBus
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.ports import bus as topics
from gamemetrics.service import Adapters
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from gamemetrics.adapters.kafka import KafkaBus
    from gamemetrics.ports.vectors import Vectors

EMBEDDED_DATABASE = "gamemetrics"


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partition counts of the architecture's topics."""
    wide = settings.bus.partitions
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


Platform = Adapters
"""The adapters one process talks to, by the name tools and tests use for them."""


def open_bus(settings: Settings, url: str, pool: AsyncConnectionPool, *, name: str) -> PgLogBus | KafkaBus:
    """Kafka when a bootstrap is configured, else the log tables in the platform's PostgreSQL."""
    if settings.kafka.bootstrap:
        from gamemetrics.adapters.kafka import KafkaBus

        return KafkaBus(settings, topic_partitions(settings), client_id=f"gamemetrics-{name}")
    return PgLogBus(url, pool, topic_partitions(settings))


@asynccontextmanager
async def connect(settings: Settings, url: str, *, name: str, pool_size: int = 8) -> AsyncIterator[Adapters]:
    """Open the pool, bus, caches and object storage, close them on exit.

    The embedded log's topics are made here; Kafka's come from `gamemetrics kafka init`, because a
    service's Kafka credentials need not (and in production should not) be allowed to create topics.
    """
    pool = await open_pool(url, max_size=pool_size, name=name)
    bus = open_bus(settings, url, pool, name=name)
    try:
        if isinstance(bus, PgLogBus):
            await bus.create_topics(topic_partitions(settings))
        async with open_caching(settings.cache) as caches:
            # Cheap to make: no adapter connects before its first use.
            yield Adapters(url, pool, bus, caches, objects=make_objects(settings.objects, settings.data_dir),
                           player_data_stores=registry.gdpr_stores(), player_exports=registry.player_exports(),
                           mail=make_mail(settings.mail, pool), mail_fallback=make_fallback_mail(settings.mail),
                           open_vectors=lambda: _open_vectors(settings))
    finally:
        await bus.close()
        await pool.close()


def _open_vectors(settings: Settings) -> Vectors:
    """The Vectors port, imported when a service first opens it: Qdrant's client is large, and
    only the recommender searches vectors."""
    from gamemetrics.adapters.qdrant.vectors import make_vectors

    return make_vectors(settings.vectors, settings.data_dir)
