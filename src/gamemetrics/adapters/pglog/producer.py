"""Producer with group commit: concurrent sends are appended together in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.pglog.batches import Entry, encode_batch
from gamemetrics.adapters.pglog.partitioner import partition_for
from gamemetrics.ports.bus import BusError, Message


@dataclass(slots=True)
class _Pending:
    topic: str
    messages: Sequence[Message]
    done: asyncio.Future[None]


class PgLogProducer:
    """Appends to `bus_log`, one record batch per partition per transaction; a send returns once
    the transaction holding it has committed.

    Offsets are handed out under a row lock on each partition's `bus_partitions` row, held until
    commit, so a reader never sees offset n+1 committed before offset n.
    """

    def __init__(self, pool: AsyncConnectionPool, topics: Mapping[str, int], *, max_batch: int = 20_000) -> None:
        self._pool = pool
        self._topics = topics
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        if topic not in self._topics:
            raise BusError(f"unknown topic {topic!r}")
        if self._closed:
            raise BusError("producer is closed")
        if not messages:
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_forever(), name="pglog-producer")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(topic, messages, done))
        self._wakeup.set()
        await done

    async def close(self) -> None:
        """Refuse new sends, let the ones already waiting finish, then stop the flusher."""
        self._closed = True
        waiting = [item.done for item in self._pending]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take_batch()
                try:
                    await self._append(batch)
                except (psycopg.Error, OSError) as exc:
                    error = BusError(f"bus append failed: {exc}")
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(error)
                except BaseException as exc:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(BusError(f"bus append failed: {exc!r}"))
                    raise
                else:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_result(None)

    def _take_batch(self) -> list[_Pending]:
        taken: list[_Pending] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0].messages) <= self._max_batch):
            item = self._pending.pop(0)
            taken.append(item)
            count += len(item.messages)
        return taken

    async def _append(self, batch: list[_Pending]) -> None:
        by_partition: dict[tuple[str, int], list[Message]] = defaultdict(list)
        for item in batch:
            partitions = self._topics[item.topic]
            for message in item.messages:
                by_partition[(item.topic, partition_for(message.key, partitions))].append(message)
        slots = sorted(by_partition)  # a fixed lock order keeps concurrent producers deadlock-free
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            await cur.execute(
                "SELECT topic, partition, next_offset FROM bus_partitions"
                " WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))"
                " ORDER BY topic, partition FOR UPDATE",
                ([t for t, _ in slots], [p for _, p in slots]),
            )
            starts = {(t, p): o for t, p, o in await cur.fetchall()}
            async with cur.copy(
                "COPY bus_log (topic, partition, base_offset, last_offset, keys, records) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                # binary: batches go as is, not as hex
                copy.set_types(("text", "int4", "int8", "int8", "bytea", "bytea"))
                for slot in slots:
                    messages = by_partition[slot]
                    keys, records = encode_batch([
                        Entry(delta, m.key, m.value, dict(m.headers) if m.headers else None)
                        for delta, m in enumerate(messages)
                    ])
                    await copy.write_row((*slot, starts[slot], starts[slot] + len(messages) - 1, keys, records))
            await cur.execute(
                "UPDATE bus_partitions AS b SET next_offset = b.next_offset + n.count"
                " FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS n(topic, partition, count)"
                " WHERE b.topic = n.topic AND b.partition = n.partition",
                (
                    [t for t, _ in slots],
                    [p for _, p in slots],
                    [len(by_partition[s]) for s in slots],
                ),
            )
