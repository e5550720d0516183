"""The online rows of one game's day, read out of the store straight into Arrow columns.

ADBC's PostgreSQL driver reads a query's rows with `COPY ... (FORMAT binary)` and decodes them
into Arrow arrays in C, so no row ever becomes a Python object: the read costs the store its
binary output and the client little more than the copy of the bytes. Its calls block, so they
run in a worker thread, on connections of their own kept for a run (`Readers`).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
from psycopg import AsyncConnection

from gamemetrics.archive import parquet
from gamemetrics.archive.layout import ArchiveError

# What the store sends for each archived column: uuids, numerics and JSON as their text (the
# driver would send uuids as 16 bytes, numerics as an opaque type), times as they are. The tenant
# and game are the same on every row of a read: they are filled in here rather than sent.
_AS_TEXT = ("event_id", "revenue_usd", "properties", "context")
_KEYS = ("tenant_id", "game_id")
SELECT_LIST = ", ".join(f"{name}::text AS {name}" if name in _AS_TEXT else name
                        for name in parquet.SCHEMA.names if name not in _KEYS)


def ids_digest_sql(where: str = "") -> str:
    """The store's count and digest of the event ids of the rows `where` selects (all when empty), as
    `count, digest`: two sums of 64-bit hashes of the ids, with a seed each (no sort, one pass, equal
    for the same set of ids in any order). Computed where the rows are read and again, under a lock,
    where they are deleted: equal only when the rows deleted are the rows that were read."""
    only = f" FILTER (WHERE {where})" if where else ""
    return (f"count(*){only}, coalesce(sum(uuid_hash_extended(event_id, 0)){only}::text || ':'"
            f" || sum(uuid_hash_extended(event_id, 1)){only}::text, '')")


def partition_name(day: date) -> str:
    """The day's partition of `events`."""
    return f"events_{day:%Y%m%d}"


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
    """The content hash of each part the rows make, `part_rows` rows each, as `parquet.rows_hash`."""
    ids_digest: str
    """The store's digest of the rows' ids (`ids_digest_sql`), taken in the snapshot the rows were read in."""


class Readers:
    """ADBC connections kept for the reads of one run (opening one costs the store a new backend and
    the driver a read of the type catalog: every day otherwise); thread-safe, closed by `close`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._idle: list[adbc.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[adbc.Connection]:
        """An idle connection or a new one; kept after a read that ended well, closed after one that did not."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        conn = conn or adbc.connect(self._url)
        try:
            yield conn
            conn.rollback()  # ends the read's transaction, which wrote nothing
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()  # a read that ended after the run did

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _read(readers: Readers, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> tuple[pa.Table, str]:
    """The rows and the store's digest of their ids, both read in one snapshot."""
    start, end = day_bounds(day)
    # The day's partition itself, not `events`: a read of the parent would hold a lock on it that the
    # drop of the day before (archived meanwhile) waits for. The values are typed (uuids, dates), so
    # they are written into the statement as literals.
    where = (f"FROM \"{partition_name(day)}\" WHERE tenant_id = '{tenant_id}' AND game_id = '{game_id}'"
             f" AND event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'")
    try:
        with readers.connection() as conn, conn.cursor() as cursor:
            # The driver runs statements in one transaction until commit: repeatable read gives both one snapshot.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SELECT {SELECT_LIST} {where}")
            table: pa.Table = cursor.fetch_arrow_table()
            cursor.execute(f"SELECT {ids_digest_sql()} {where}")
            count, digest = cursor.fetchone() or (0, "")
    except adbc.Error as exc:
        raise ArchiveError(f"could not read the online rows of game {game_id} on {day}: {exc}") from exc
    if count != table.num_rows:
        raise ArchiveError(f"the store counted {count} rows of game {game_id} on {day} but sent {table.num_rows}")
    for name, key in zip(_KEYS, (tenant_id, game_id), strict=True):
        table = table.add_column(parquet.SCHEMA.get_field_index(name), name, pa.repeat(str(key), table.num_rows))
    return table.cast(parquet.SCHEMA), str(digest)


def _once(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> tuple[pa.Table, str]:
    readers = Readers(url)
    try:
        return _read(readers, tenant_id, game_id, day)
    finally:
        readers.close()


async def read_online(url: str, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> pa.Table:
    """The game's rows of the day as the archive stores them (`parquet.SCHEMA`), in the store's order
    (about the order they arrived in, which Parquet compresses far better than event-id order)."""
    return (await asyncio.to_thread(_once, url, tenant_id, game_id, day))[0]


def _read_day(source: str | Readers, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date,
              part_rows: int) -> OnlineDay:
    rows, digest = (_read(source, tenant_id, game_id, day) if isinstance(source, Readers)
                    else _once(source, tenant_id, game_id, day))
    hashes = tuple(parquet.rows_hash(rows.slice(start, part_rows)) for start in range(0, rows.num_rows, part_rows))
    return OnlineDay(rows, hashes, digest)


async def read_online_day(source: str | Readers, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date,
                          part_rows: int) -> OnlineDay:
    """`read_online`'s rows with their parts' content hashes and the store's digest of their ids; `source`
    a URL or the run's `Readers`."""
    return await asyncio.to_thread(_read_day, source, tenant_id, game_id, day, part_rows)


async def count_moved(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, rows: int) -> None:
    """Count `rows` taken out of the store or brought back in the game's `events_moved`, one of the
    counters the analytics caches key their answers by (so none is kept for the rows as they were)."""
    if rows:
        await conn.execute(
            "INSERT INTO game_counters AS c (tenant_id, game_id, events_moved) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, game_id) DO UPDATE SET events_moved = c.events_moved + excluded.events_moved",
            (tenant_id, game_id, rows))
