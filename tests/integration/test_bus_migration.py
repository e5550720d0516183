"""Messages waiting in the embedded log when it moves to record batches, and when those batches
are compressed, keep their offsets, and consumers carry on from their committed positions."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
from alembic import command

from gamemetrics.adapters.pglog.batches import Entry, decode_batch, encode_entries
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import alembic_config, upgrade
from gamemetrics.ports.bus import RAW_EVENTS
from gamemetrics.runtime import connect
from gamemetrics.settings import Settings
from tests.integration.test_bus_contract import drain

_names = itertools.count()


@contextlib.contextmanager
def _empty_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"gm_bus_migration_{next(_names)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url(name)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_waiting_messages_survive_the_move_to_record_batches(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    with _empty_database(pg_server) as url:
        await _move_and_back(url, tmp_path)


async def test_waiting_batches_survive_compression_and_back(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    with _empty_database(pg_server) as url:
        await _compress_and_back(url, tmp_path)


async def _waiting(url: str, tmp_path: Path, count: int) -> list[tuple[int, bytes, bytes, dict[str, str]]]:
    """What group `g` reads from its committed offset on: (offset, key, value, headers) of `count` records."""
    settings = Settings(data_dir=tmp_path, database_url=url)
    async with connect(settings, url, name="test") as platform:
        consumer = platform.bus.consumer("g", [RAW_EVENTS])
        records = await drain(consumer, count)
        await consumer.close()
    return [(r.offset, r.key, r.value, dict(r.headers)) for r in records]


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

    assert await _waiting(url, tmp_path, 2) == [
        (1, b"k1", b"waiting", {"traceparent": "x"}), (2, b"", b"keyless", {})]

    # And back: the batches become one row per message again.
    command.downgrade(alembic_config(url), "0004")
    with psycopg.connect(url) as conn:
        rows = conn.execute('SELECT "offset", value FROM bus_log ORDER BY "offset"').fetchall()
    assert [(o, bytes(v)) for o, v in rows] == [(0, b"read"), (1, b"waiting"), (2, b"keyless")]


async def _compress_and_back(url: str, tmp_path: Path) -> None:
    upgrade(url, "0009")
    # Batches as they were stored before 0010, uncompressed: the first lost offset 1 to an erasure,
    # then more batches of one than the migration rewrites at a time.
    first = [Entry(0, b"k0", b"read"), Entry(2, b"k1", b"waiting", {"traceparent": "x"}), Entry(3, b"", b"keyless")]
    batches = [(0, 3, first)] + [(o, o, [Entry(0, b"k1", f"next {o}".encode())]) for o in range(4, 44)]
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO bus_partitions (topic, partition, next_offset) VALUES (%s, 0, 44)", (RAW_EVENTS,))
        conn.cursor().executemany(
            "INSERT INTO bus_log (topic, partition, base_offset, last_offset, records) VALUES (%s, 0, %s, %s, %s)",
            [(RAW_EVENTS, base, last, encode_entries(entries)) for base, last, entries in batches],
        )
        conn.execute("INSERT INTO bus_offsets (group_id, topic, partition, next_offset) VALUES ('g', %s, 0, 1)",
                     (RAW_EVENTS,))
    upgrade(url)

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT base_offset, last_offset, keys, records FROM bus_log ORDER BY base_offset").fetchall()
    assert [(b, last, bytes(k)) for b, last, k, _ in rows] == [(0, 3, b"k0k1")] + [(o, o, b"k1") for o in range(4, 44)]
    assert {bytes(r)[:4] for *_, r in rows} == {b"\x28\xb5\x2f\xfd"}  # zstd frames
    assert [decode_batch(bytes(r)) for *_, r in rows] == [entries for *_, entries in batches]
    assert await _waiting(url, tmp_path, 42) == [
        (2, b"k1", b"waiting", {"traceparent": "x"}), (3, b"", b"keyless", {}),
        *((o, b"k1", f"next {o}".encode(), {}) for o in range(4, 44))]

    # And back: the same rows, uncompressed again, and no `keys` column.
    command.downgrade(alembic_config(url), "0009")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT base_offset, last_offset, records FROM bus_log ORDER BY base_offset").fetchall()
        columns = conn.execute("SELECT column_name FROM information_schema.columns"
                               " WHERE table_name = 'bus_log' AND column_name = 'keys'").fetchall()
    assert [(b, last, bytes(r)) for b, last, r in rows] == [(b, last, encode_entries(e)) for b, last, e in batches]
    assert columns == []
