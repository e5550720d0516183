"""Consumer-group member: owns partitions through advisory locks, reads by offset, commits positions."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence

import psycopg
from psycopg.rows import tuple_row

from gamemetrics.adapters.pglog.batches import decode_batch
from gamemetrics.adapters.postgres.pool import CONNECTION_OPTIONS
from gamemetrics.ports.bus import BusError, Record

# How often a member looks at the group's size and the partitions nobody owns (a member that
# died released its locks).
_CLAIM_INTERVAL_S = 2.0


class PgLogConsumer:
    """Reads the partitions of `topics` that this member holds a session advisory lock on.

    A member's locks live as long as its database session, so a killed member's partitions become
    free at once and another member (or its restart) claims them from the last committed offset.
    Members share the partitions evenly (see `_rebalance`), so a second processor takes half.
    """

    def __init__(self, url: str, group_id: str, topics: Sequence[str], partitions: Mapping[str, int]) -> None:
        self._url = url
        self._group = group_id
        self._topics = list(topics)
        self._partitions = partitions
        self._conn: psycopg.AsyncConnection | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._last_claim = 0.0
        self._application_name = f"consumer:{group_id}"[:63]  # the server keeps 63 bytes of it

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The partitions this member currently owns."""
        return sorted(self._positions)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._positions.clear()
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=tuple_row, application_name=self._application_name,
                options=CONNECTION_OPTIONS,
            )
            self._last_claim = 0.0
        return self._conn

    async def _rebalance(self, conn: psycopg.AsyncConnection) -> None:
        """Hold a fair share of the group's partitions: claim free ones up to it, release the rest.

        The members are the group's live consumer sessions, so a member that joins or dies changes
        everyone's share at their next round. A released partition may still have records this
        member read and has not committed; its next owner reads them again from the committed
        offset, which the sinks' idempotence makes harmless (the same as a crashed owner).
        """
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (self._application_name,)
        )
        row = await cur.fetchone()
        slots = [(topic, p) for topic in self._topics for p in range(self._partitions[topic])]
        share = math.ceil(len(slots) / max(1, int(row[0]) if row else 1))
        held = sorted(self._positions)
        for topic, partition in held[share:]:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s || '/' || %s), %s)",
                               (self._group, topic, partition))
            del self._positions[(topic, partition)]
        for topic, partition in slots:
            if len(self._positions) >= share:
                break
            if (topic, partition) in self._positions:
                continue
            cur = await conn.execute(
                "SELECT COALESCE((SELECT next_offset FROM bus_offsets"
                "  WHERE group_id = %(g)s AND topic = %(t)s AND partition = %(p)s), 0)"
                " FROM (SELECT pg_try_advisory_lock(hashtext(%(g)s || '/' || %(t)s), %(p)s) AS locked) AS l"
                " WHERE l.locked",
                {"g": self._group, "t": topic, "p": partition},
            )
            claimed = await cur.fetchone()
            if claimed is not None:
                self._positions[(topic, partition)] = claimed[0]

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
            await self._rebalance(conn)
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
            binary=True,  # batches are megabytes: raw bytes, not hex text to decode
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

    async def _drop_connection(self) -> None:
        self._positions.clear()
        if self._conn is not None:
            await self._conn.close()
        self._conn = None

    async def close(self) -> None:
        await self._drop_connection()

