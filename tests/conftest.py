"""Fixtures on real infrastructure: one embedded PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import upgrade
from gamemetrics.runtime import Platform, connect
from gamemetrics.settings import BusSettings, Settings
from gamemetrics.tenancy.store import CreatedKey, TenancyStore
from tests.http_providers import (  # noqa: F401  (started when a test asks)
    apns_server,
    fcm_server,
    twilio_server,
    web_push_server,
)
from tests.kafka_broker import (  # noqa: F401  (Kafka brokers, started when a test asks; the session one's proxy)
    kafka_broker,
    kafka_broker_and_proxy,
    kafka_proxy,
    kafka_tls_broker,
)
from tests.net import free_port  # noqa: F401  (tests import it from here)
from tests.redis_server import redis_server  # noqa: F401  (started when a test asks)
from tests.s3_server import s3_server  # noqa: F401  (started when a test asks)
from tests.smtp_server import smtp_server  # noqa: F401  (started when a test asks)
from tests.tracing import spans  # noqa: F401  (tracing on, spans kept in memory, when a test asks)

TEMPLATE = "gm_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's temp root: each pytest session resets that to mode 0700, which would lock
    # out the server's own system user when two sessions run side by side.
    root = Path(tempfile.mkdtemp(prefix="gm-pg-"))
    server = EmbeddedPostgres(root)
    upgrade(server.ensure_database(TEMPLATE))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A freshly migrated database of its own for each test (a copy of the migrated template)."""
    name = f"gm_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield pg_server.url(name)
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, bus=BusSettings(partitions=4))


@pytest_asyncio.fixture
async def platform(settings: Settings, database_url: str) -> AsyncIterator[Platform]:
    async with connect(settings, database_url, name="test") as platform:
        yield platform


@pytest_asyncio.fixture
async def write_key(platform: Platform) -> CreatedKey:
    """A tenant, a game and an import-capable write key."""
    store = TenancyStore(platform.pool)
    tenant = await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}")
    game = await store.create_game(tenant, "game")
    return await store.create_write_key(game, allow_import=True)

