"""Messages waiting in the embedded log when it moves to record batches keep their offsets, and
consumers carry on from their committed positions."""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
from alembic import command

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import alembic_config, upgrade
from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import connect
from gamemetrics.settings import Settings
from tests.integration.test_bus_contract import drain

_names = itertools.count()


async def test_waiting_messages_survive_the_move_to_record_batches(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    name = f"gm_bus_migration_{next(_names)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.url(name)
    try:
        await _move_and_back(url, tmp_path)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _move_and_back(url: str, tmp_path: Path) -> None:
    upgrade(url, "0004")
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO bus_partitions (topic, partition, next_offset) VALUES (%s, 0, 3)", (RAW_EVENTS,))
        conn.execute(
            'INSERT INTO bus_log (topic, partition, "offset", key, value, headers) VALUES'
            " (%(t)s, 0, 0, 'k0', 'read', NULL), (%(t)s, 0, 1, 'k1', 'waiting', '{\"traceparent\": \"x\"}'),"
            " (%(t)s, 0, 2, NULL, 'keyless', NULL)",
            {"t": RAW_EVENTS},
        )
        conn.execute("INSERT INTO bus_offsets (group_id, topic, partition, next_offset) VALUES ('g', %s, 0, 1)",
                     (RAW_EVENTS,))
    upgrade(url)

    settings = Settings(data_dir=tmp_path, database_url=url)
    async with connect(settings, url, name="test") as platform:
        consumer = platform.bus.consumer("g", [RAW_EVENTS])
        records = await drain(consumer, 2)
        await consumer.close()
    assert [(r.offset, r.key, r.value, dict(r.headers)) for r in records] == [
        (1, b"k1", b"waiting", {"traceparent": "x"}), (2, b"", b"keyless", {})]

    # And back: the batches become one row per message again.
    command.downgrade(alembic_config(url), "0004")
    with psycopg.connect(url) as conn:
        rows = conn.execute('SELECT "offset", value FROM bus_log ORDER BY "offset"').fetchall()
    assert [(o, bytes(v)) for o, v in rows] == [(0, b"read"), (1, b"waiting"), (2, b"keyless")]
