"""Consumer-group member: owns partitions through advisory locks, reads by offset, commits positions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import psycopg
from psycopg.rows import tuple_row

from gamemetrics.adapters.pglog.batches import decode_batch
from gamemetrics.adapters.postgres.pool import CONNECTION_OPTIONS
from gamemetrics.ports.bus import BusError, Record

# How often a member looks for partitions nobody owns (a member that died released its locks).
_CLAIM_INTERVAL_S = 2.0


class PgLogConsumer:
    """Reads the partitions of `topics` that this member holds a session advisory lock on.

    A member's locks live as long as its database session, so a killed member's partitions become
    free at once and another member (or its restart) claims them from the last committed offset.
    """

    def __init__(self, url: str, group_id: str, topics: Sequence[str], partitions: Mapping[str, int]) -> None:
        self._url = url
        self._group = group_id
        self._topics = list(topics)
        self._partitions = partitions
        self._conn: psycopg.AsyncConnection | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._last_claim = 0.0

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The partitions this member currently owns."""
        return sorted(self._positions)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._positions.clear()
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=tuple_row, application_name=f"consumer:{self._group}",
                options=CONNECTION_OPTIONS,
            )
            self._last_claim = 0.0
        return self._conn

    async def _claim(self, conn: psycopg.AsyncConnection) -> None:
        wanted = [
            (topic, p)
            for topic in self._topics
            for p in range(self._partitions[topic])
            if (topic, p) not in self._positions
        ]
        if not wanted:
            return
        cur = await conn.execute(
            "SELECT w.topic, w.partition, COALESCE(o.next_offset, 0)"
            " FROM unnest(%s::text[], %s::int[]) AS w(topic, partition)"
            " LEFT JOIN bus_offsets o ON o.group_id = %s AND o.topic = w.topic AND o.partition = w.partition"
            " WHERE pg_try_advisory_lock(hashtext(%s || '/' || w.topic), w.partition)",
            ([t for t, _ in wanted], [p for _, p in wanted], self._group, self._group),
        )
        for topic, partition, offset in await cur.fetchall():
            self._positions[(topic, partition)] = offset

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                records = await self._read(max_records)
            except (psycopg.OperationalError, OSError) as exc:
                await self._drop_connection()
                raise BusError(f"group {self._group}: cannot read {self._topics}: {exc}") from exc
            if records or time.monotonic() >= deadline:
                return records
            await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    async def _read(self, max_records: int) -> list[Record]:
        conn = await self._connection()
        if time.monotonic() - self._last_claim > _CLAIM_INTERVAL_S:
            await self._claim(conn)
            self._last_claim = time.monotonic()
        if not self._positions:
            return []
        slots = sorted(self._positions)
        per_partition = max(1, max_records // len(slots))
        # The batches holding offsets from each position on, as many as hold `per_partition`
        # entries: a batch is never more than that many rows away, so the LIMIT bounds the scan.
        cur = await conn.execute(
            "SELECT l.topic, l.partition, l.base_offset, l.records"
            " FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS p(topic, partition, pos)"
            " CROSS JOIN LATERAL ("
            "   SELECT b.*, sum(b.last_offset - greatest(b.base_offset, p.pos) + 1)"
            "     OVER (ORDER BY b.last_offset) AS upto"
            "   FROM (SELECT * FROM bus_log WHERE topic = p.topic AND partition = p.partition"
            "         AND last_offset >= p.pos ORDER BY last_offset LIMIT %s) AS b) AS l"
            " WHERE l.upto - (l.last_offset - greatest(l.base_offset, p.pos) + 1) < %s"
            " ORDER BY l.topic, l.partition, l.last_offset",
            ([t for t, _ in slots], [p for _, p in slots], [self._positions[s] for s in slots],
             per_partition, per_partition),
        )
        records: list[Record] = []
        taken: dict[tuple[str, int], int] = {}
        for topic, partition, base, data in await cur.fetchall():
            slot = (topic, partition)
            start = self._positions[slot]
            for entry in decode_batch(data):
                offset = base + entry.delta
                if offset < start or taken.get(slot, 0) >= per_partition:
                    continue
                records.append(Record(topic, partition, offset, entry.key, entry.value, entry.headers or {}))
                taken[slot] = taken.get(slot, 0) + 1
                self._positions[slot] = offset + 1
        return records

    async def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        nexts: dict[tuple[str, int], int] = {}
        for record in records:
            slot = (record.topic, record.partition)
            nexts[slot] = max(nexts.get(slot, 0), record.offset + 1)
        slots = sorted(nexts)
        try:
            conn = await self._connection()
            await conn.execute(
                "INSERT INTO bus_offsets (group_id, topic, partition, next_offset)"
                " SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[])"
                " ON CONFLICT (group_id, topic, partition) DO UPDATE"
                " SET next_offset = GREATEST(bus_offsets.next_offset, excluded.next_offset), updated_at = now()",
                (self._group, [t for t, _ in slots], [p for _, p in slots], [nexts[s] for s in slots]),
            )
        except (psycopg.OperationalError, OSError) as exc:
            await self._drop_connection()
            raise BusError(f"group {self._group}: commit failed: {exc}") from exc

    async def rewind(self) -> None:
        """Forget read-ahead positions: the next poll starts again from the committed offsets."""
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        self._positions.clear()
        if self._conn is not None:
            await self._conn.close()
        self._conn = None

    async def close(self) -> None:
        await self._drop_connection()

