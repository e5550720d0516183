"""Kafka consumer-group member: bounded polls, commits after the sink, commit-on-revoke in rebalances."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from gamemetrics.adapters.kafka.config import Names, client_log
from gamemetrics.ports.bus import BusError, Record

T = TypeVar("T")
Slot = tuple[str, int]  # (logical topic, partition)

# Errors a member cannot wait out: polling again will not help, so poll raises them.
_FATAL_POLL_ERRORS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}
# Commit answers that mean "the group is rebalancing": the positions are kept for the revoke handler.
_REBALANCING = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError._WAIT_COORD, KafkaError.NOT_COORDINATOR}


class KafkaConsumer:
    """A member of one consumer group; every librdkafka call runs on the member's own thread.

    Positions the caller committed (its sink has stored those records) are written synchronously.
    If that write meets a rebalance, they stay pending and the revoke handler writes them before
    the partitions go to another member (commit-on-revoke), so the next owner does not redo them.
    A member never commits for a partition it no longer owns: after a revoke the next owner reads
    from the last committed position, and the sink's de-duplication absorbs the repeat.
    """

    def __init__(self, config: dict[str, Any], names: Names, group_id: str, topics: Sequence[str]) -> None:
        self._config = config
        self._names = names
        self._group = group_id
        self._topics = list(topics)
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: ConfluentConsumer | None = None
        self._owned: set[Slot] = set()
        self._pending: dict[Slot, int] = {}  # stored by the sink, not yet committed
        self._committed: dict[Slot, int] = {}
        self._fatal: KafkaError | None = None

    @property
    def assignment(self) -> list[Slot]:
        """The partitions this member currently owns."""
        return sorted(self._owned)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-consumer-{self._group}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ on the member's thread

    def _open(self) -> ConfluentConsumer:
        if self._consumer is None:
            self._fatal = None
            consumer = ConfluentConsumer({**self._config, "error_cb": self._on_error})
            consumer.subscribe(
                [self._names.topic(t) for t in self._topics],
                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
            )
            self._consumer = consumer
        return self._consumer

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in _FATAL_POLL_ERRORS:
            self._fatal = err
        client_log.warning("kafka consumer %s: %s", self._group, err.str())

    def _slot(self, tp: TopicPartition) -> Slot | None:
        topic = self._names.logical_topic(tp.topic)
        return (topic, tp.partition) if topic is not None else None

    def _on_assign(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            slot = self._slot(tp)
            if slot is not None:
                self._owned.add(slot)

    def _on_revoke(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        revoked = {s for s in (self._slot(tp) for tp in partitions) if s is not None}
        leaving = {slot: pos for slot, pos in self._pending.items() if slot in revoked}
        if leaving:
            try:
                self._write(consumer, leaving)
            except (KafkaException, BusError) as exc:  # the next owner reads them again: at-least-once
                client_log.warning("group %s: commit on revoke failed: %s", self._group, exc)
        self._forget(revoked)

    def _on_lost(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already, so nothing is committed for them.
        self._forget({s for s in (self._slot(tp) for tp in partitions) if s is not None})

    def _forget(self, slots: set[Slot]) -> None:
        self._owned -= slots
        for slot in slots:
            self._pending.pop(slot, None)
            self._committed.pop(slot, None)

    def _poll(self, max_records: int, timeout: float) -> list[Record]:
        consumer = self._open()
        messages = consumer.consume(max(1, max_records), timeout)
        records: list[Record] = []
        for message in messages:
            err = message.error()
            if err is not None:
                if err.fatal() or err.code() in _FATAL_POLL_ERRORS:
                    raise BusError(f"group {self._group}: cannot read {self._topics}: {err.str()}")
                client_log.warning("kafka consumer %s: %s", self._group, err.str())
                continue
            topic = self._names.logical_topic(message.topic() or "")
            if topic is None:
                continue
            headers = message.headers()
            records.append(Record(
                topic, message.partition(), message.offset(), message.key() or b"", message.value() or b"",
                {k: v.decode(errors="replace") if isinstance(v, bytes) else (v or "") for k, v in headers}
                if headers else {},
            ))
        if self._fatal is not None:
            raise BusError(f"group {self._group}: {self._fatal.str()}")
        return records

    def _commit(self, positions: dict[Slot, int]) -> None:
        for slot, position in positions.items():
            # Only partitions still owned, and never backwards.
            if slot in self._owned and position > max(self._committed.get(slot, -1), self._pending.get(slot, -1)):
                self._pending[slot] = position
        if not self._pending or self._consumer is None:
            return
        try:
            self._write(self._consumer, dict(self._pending))
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in _REBALANCING:
                return  # still pending: the revoke handler commits them before the partitions move
            raise BusError(f"group {self._group}: commit of {self._describe(self._pending)} failed: {err.str()}") from exc

    def _write(self, consumer: ConfluentConsumer, positions: dict[Slot, int]) -> None:
        offsets = [TopicPartition(self._names.topic(t), p, pos) for (t, p), pos in positions.items()]
        answered = consumer.commit(offsets=offsets, asynchronous=False) or []
        failed = [tp for tp in answered if tp.error is not None]
        if failed:
            raise BusError(f"group {self._group}: commit refused for {failed[0].topic}[{failed[0].partition}]:"
                           f" {failed[0].error.str()}")
        for slot, position in positions.items():
            self._committed[slot] = position
            if self._pending.get(slot) == position:
                del self._pending[slot]

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        if self._pending:
            try:
                self._write(consumer, dict(self._pending))
            except (KafkaException, BusError) as exc:
                client_log.warning("group %s: final commit failed: %s", self._group, exc)
        try:
            consumer.close()  # leaves the group: its partitions move to the other members now
        except (KafkaException, RuntimeError) as exc:
            client_log.warning("group %s: close failed: %s", self._group, exc)
        self._forget(set(self._owned))
        self._pending.clear()

    def _describe(self, positions: dict[Slot, int]) -> str:
        return ", ".join(f"{t}[{p}]@{pos}" for (t, p), pos in sorted(positions.items()))

    # ------------------------------------------------------------------ the port

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        try:
            return await self._call(self._poll, max_records, timeout)
        except KafkaException as exc:
            raise BusError(f"group {self._group}: cannot read {self._topics}: {exc.args[0].str()}") from exc

    async def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        nexts: dict[Slot, int] = {}
        for record in records:
            slot = (record.topic, record.partition)
            nexts[slot] = max(nexts.get(slot, 0), record.offset + 1)
        await self._call(self._commit, nexts)

    async def close(self) -> None:
        """Commit what the sink stored, leave the group; a later poll joins it again."""
        if self._executor is None:
            return
        try:
            await self._call(self._close)
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False)
