"""The online rows of one game's day, read out of the store straight into Arrow columns.

ADBC's PostgreSQL driver reads a query's rows with `COPY ... (FORMAT binary)` and decodes them
into Arrow arrays in C, so no row ever becomes a Python object: the read costs the store its
binary output and the client little more than the copy of the bytes. Its calls block, so they
run in a worker thread, on a connection of their own for each read.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
from psycopg import AsyncConnection

from gamemetrics.archive import parquet

# What the store sends for each archived column: uuids, numerics and JSON as their text (the
# driver would send uuids as 16 bytes, numerics as an opaque type), times as they are.
_AS_TEXT = ("tenant_id", "game_id", "event_id", "revenue_usd", "properties", "context")
SELECT_LIST = ", ".join(f"{name}::text AS {name}" if name in _AS_TEXT else name for name in parquet.SCHEMA.names)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day as [start, end)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class OnlineDay:
    """A game's online rows of a day, with what the archive will need of them, computed as they are read
    (so in the thread that reads ahead, beside the work on the day before)."""

    rows: pa.Table
    part_hashes: tuple[str, ...]
    """The content hash of each part the rows make, `part_rows` rows each, as `parquet.content_hash`."""
    ids_digest: str
    """`parquet.ids_digest` of their event ids."""


def _read(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> pa.Table:
    start, end = day_bounds(day)
    # The values are typed (uuids, dates), so they are written into the statement as literals.
    query = (f"SELECT {SELECT_LIST} FROM events WHERE tenant_id = '{tenant_id}' AND game_id = '{game_id}'"
             f" AND event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'")
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        table: pa.Table = cursor.fetch_arrow_table()
    return table.cast(parquet.SCHEMA)


async def read_online(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> pa.Table:
    """The game's rows of the day as the archive stores them (`parquet.SCHEMA`), in the store's order
    (about the order they arrived in, which Parquet compresses far better than event-id order)."""
    return await asyncio.to_thread(_read, url, tenant_id, game_id, day)


def _read_day(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date, part_rows: int) -> OnlineDay:
    rows = _read(url, tenant_id, game_id, day)
    hashes = tuple(parquet.content_hash(rows.slice(start, part_rows)) for start in range(0, rows.num_rows, part_rows))
    return OnlineDay(rows, hashes, parquet.ids_digest(rows["event_id"]))


async def read_online_day(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date,
                          part_rows: int) -> OnlineDay:
    """`read_online`'s rows with their parts' content hashes and their ids' digest."""
    return await asyncio.to_thread(_read_day, url, tenant_id, game_id, day, part_rows)


async def count_moved(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, rows: int) -> None:
    """Count `rows` taken out of the store or brought back in the game's `events_moved`, one of the
    counters the analytics caches key their answers by (so none is kept for the rows as they were)."""
    if rows:
        await conn.execute(
            "INSERT INTO game_counters AS c (tenant_id, game_id, events_moved) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, game_id) DO UPDATE SET events_moved = c.events_moved + excluded.events_moved",
            (tenant_id, game_id, rows))
