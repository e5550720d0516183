"""PgLogBus: the Bus port on PostgreSQL log tables, the embedded default."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.pglog.batches import decode_batch, encode_batch
from gamemetrics.adapters.pglog.consumer import PgLogConsumer
from gamemetrics.adapters.pglog.partitioner import partition_for
from gamemetrics.adapters.pglog.producer import PgLogProducer
from gamemetrics.ports.bus import BusError, PartitionLag


class PgLogBus:
    """Topics are rows of `bus_partitions`; messages are record batches in `bus_log`; positions are
    `bus_offsets`."""

    def __init__(self, url: str, pool: AsyncConnectionPool, topics: Mapping[str, int]) -> None:
        self._url = url
        self._pool = pool
        self._topics = dict(topics)
        self._producer: PgLogProducer | None = None

    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            for topic, count in partitions.items():
                await conn.execute(
                    "INSERT INTO bus_partitions (topic, partition)"
                    " SELECT %s, p FROM generate_series(0, %s - 1) AS p ON CONFLICT DO NOTHING",
                    (topic, count),
                )
        self._topics.update(partitions)

    def producer(self) -> PgLogProducer:
        if self._producer is None:
            self._producer = PgLogProducer(self._pool, self._topics)
        return self._producer

    def consumer(self, group_id: str, topics: Sequence[str]) -> PgLogConsumer:
        missing = [t for t in topics if t not in self._topics]
        if missing:
            raise BusError(f"unknown topics {missing}")
        return PgLogConsumer(self._url, group_id, topics, self._topics)

    async def lag(self) -> list[PartitionLag]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT o.group_id, o.topic, o.partition, o.next_offset, b.next_offset"
                " FROM bus_offsets o JOIN bus_partitions b USING (topic, partition)"
                " ORDER BY o.group_id, o.topic, o.partition"
            )
            rows = await cur.fetchall()
        return [PartitionLag(g, t, p, c, e) for g, t, p, c, e in rows]

    async def ping(self) -> None:
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1 FROM bus_partitions LIMIT 1")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            raise BusError(f"bus unreachable: {exc}") from exc

    async def trim(self, retention_hours: float) -> int:
        """Delete the batches every group has passed; on topics no group reads, batches past retention.
        Returns how many messages went."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "WITH floor AS ("
                "  SELECT b.topic, b.partition, min(o.next_offset) AS upto FROM bus_partitions b"
                "  JOIN bus_offsets o USING (topic, partition) GROUP BY b.topic, b.partition),"
                " passed AS (DELETE FROM bus_log l USING floor f"
                "  WHERE l.topic = f.topic AND l.partition = f.partition AND l.last_offset < f.upto"
                "  RETURNING l.last_offset - l.base_offset + 1 AS n),"
                " expired AS (DELETE FROM bus_log l WHERE l.appended_at < now() - make_interval(secs => %s)"
                "  AND NOT EXISTS (SELECT 1 FROM bus_offsets o WHERE o.topic = l.topic)"
                "  RETURNING l.last_offset - l.base_offset + 1 AS n)"
                " SELECT (SELECT coalesce(sum(n), 0) FROM passed) + (SELECT coalesce(sum(n), 0) FROM expired)",
                (retention_hours * 3600,),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def erase(self, topic: str, key: bytes, match: Callable[[bytes], bool] | None = None) -> int:
        """Remove `topic`'s messages with `key` (whose value `match`es, when given) from the batches
        of the one partition the key lives in; the other entries keep their offsets."""
        partition = partition_for(key, self._topics[topic])
        removed = 0
        async with self._pool.connection() as conn, conn.transaction():
            # `keys` holds each batch's keys uncompressed, so PostgreSQL skips the batches that
            # cannot hold this one without decompressing any.
            cur = await conn.execute(
                "SELECT last_offset, records FROM bus_log"
                " WHERE topic = %s AND partition = %s AND position(%s IN keys) > 0 FOR UPDATE",
                (topic, partition, key),
            )
            for last, data in await cur.fetchall():
                entries = decode_batch(bytes(data))
                kept = [e for e in entries if e.key != key or (match is not None and not match(e.value))]
                if len(kept) == len(entries):
                    continue
                removed += len(entries) - len(kept)
                if kept:  # `keys` is rewritten too: it must not name the erased key either
                    await conn.execute(
                        "UPDATE bus_log SET keys = %s, records = %s"
                        " WHERE topic = %s AND partition = %s AND last_offset = %s",
                        (*encode_batch(kept), topic, partition, last),
                    )
                else:
                    await conn.execute(
                        "DELETE FROM bus_log WHERE topic = %s AND partition = %s AND last_offset = %s",
                        (topic, partition, last),
                    )
        return removed

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.close()
