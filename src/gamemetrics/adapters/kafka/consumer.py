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


class _Membership:
    """One librdkafka consumer, from joining the group to leaving it, and what it owns meanwhile.

    Runs only on its member's thread: the rebalance callbacks run inside `consume`, on that thread.
    """

    def __init__(self, config: dict[str, Any], names: Names, group: str, topics: Sequence[str]) -> None:
        self.names = names
        self.group = group
        self.topics = list(topics)
        self.owned: set[Slot] = set()
        self.pending: dict[Slot, int] = {}  # stored by the sink, not yet committed
        self.committed: dict[Slot, int] = {}
        self.fatal: KafkaError | None = None
        self.consumer = ConfluentConsumer({**config, "error_cb": self._on_error})
        self.consumer.subscribe(
            [names.topic(t) for t in self.topics],
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
        )

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in _FATAL_POLL_ERRORS:
            self.fatal = err
        client_log.warning("kafka consumer %s: %s", self.group, err.str())

    def _slots(self, partitions: list[TopicPartition]) -> set[Slot]:
        found = ((self.names.logical_topic(tp.topic), tp.partition) for tp in partitions)
        return {(t, p) for t, p in found if t is not None}

    def _on_assign(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        self.owned |= self._slots(partitions)

    def _on_revoke(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        revoked = self._slots(partitions)
        leaving = {slot: pos for slot, pos in self.pending.items() if slot in revoked}
        if leaving:  # the last moment these positions can be committed by their owner
            try:
                self.write(leaving)
            except (KafkaException, BusError) as exc:  # the next owner reads them again: at-least-once
                client_log.warning("group %s: commit on revoke failed: %s", self.group, exc)
        self._forget(revoked)

    def _on_lost(self, consumer: ConfluentConsumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked (the session expired): another member may own them already; commit nothing.
        self._forget(self._slots(partitions))

    def _forget(self, slots: set[Slot]) -> None:
        self.owned -= slots
        for slot in slots:
            self.pending.pop(slot, None)
            self.committed.pop(slot, None)

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        records: list[Record] = []
        for message in self.consumer.consume(max(1, max_records), timeout):
            err = message.error()
            if err is not None:
                if err.fatal() or err.code() in _FATAL_POLL_ERRORS:
                    raise BusError(f"group {self.group}: cannot read {self.topics}: {err.str()}")
                client_log.warning("kafka consumer %s: %s", self.group, err.str())
                continue
            topic = self.names.logical_topic(message.topic() or "")
            if topic is None:
                continue
            headers = message.headers() or []
            records.append(Record(
                topic, message.partition() or 0, message.offset() or 0, message.key() or b"", message.value() or b"",
                {k: v.decode(errors="replace") if isinstance(v, bytes) else (v or "")
                 for k, v in (headers.items() if isinstance(headers, dict) else headers)},
            ))
        if self.fatal is not None:
            raise BusError(f"group {self.group}: {self.fatal.str()}")
        return records

    def commit(self, positions: dict[Slot, int]) -> None:
        for slot, position in positions.items():
            # Only partitions still owned, and never backwards.
            if slot in self.owned and position > max(self.committed.get(slot, -1), self.pending.get(slot, -1)):
                self.pending[slot] = position
        if not self.pending:
            return
        try:
            self.write(dict(self.pending))
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in _REBALANCING:
                return  # still pending: the revoke handler commits them before the partitions move
            raise BusError(f"group {self.group}: commit of {_describe(self.pending)} failed: {err.str()}") from exc

    def write(self, positions: dict[Slot, int]) -> None:
        offsets = [TopicPartition(self.names.topic(t), p, pos) for (t, p), pos in positions.items()]
        answered = self.consumer.commit(offsets=offsets, asynchronous=False) or []
        failed = [(tp, tp.error) for tp in answered if tp.error is not None]
        if failed:
            tp, error = failed[0]
            raise BusError(f"group {self.group}: commit refused for {tp.topic}[{tp.partition}]: {error.str()}")
        for slot, position in positions.items():
            self.committed[slot] = position
            if self.pending.get(slot) == position:
                del self.pending[slot]

    def leave(self) -> None:
        """Commit what the sink stored, then leave the group (its partitions move on at once)."""
        if self.pending:
            try:
                self.write(dict(self.pending))
            except (KafkaException, BusError) as exc:
                client_log.warning("group %s: final commit failed: %s", self.group, exc)
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            client_log.warning("group %s: close failed: %s", self.group, exc)
        self._forget(set(self.owned))


def _describe(positions: dict[Slot, int]) -> str:
    return ", ".join(f"{t}[{p}]@{pos}" for (t, p), pos in sorted(positions.items()))


class KafkaConsumer:
    """A member of one consumer group; every librdkafka call runs on the member's own thread.

    Positions the caller committed (its sink has stored those records) are written synchronously.
    If that write meets a rebalance, they stay pending and the revoke handler writes them before
    the partitions go to another member (commit-on-revoke), so the next owner does not redo them.
    A member never commits for a partition it no longer owns: after a revoke the next owner reads
    from the last committed position, and the sink's de-duplication absorbs the repeat.
    """

    def __init__(
        self, config: dict[str, Any], names: Names, group_id: str, topics: Sequence[str], *, close_timeout: float
    ) -> None:
        self._config = config
        self._names = names
        self._group = group_id
        self._topics = list(topics)
        self._close_timeout = close_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._membership: _Membership | None = None

    @property
    def assignment(self) -> list[Slot]:
        """The partitions this member currently owns."""
        return sorted(self._membership.owned) if self._membership is not None else []

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-consumer-{self._group}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _joined(self) -> _Membership:
        if self._membership is None:
            self._membership = _Membership(self._config, self._names, self._group, self._topics)
        return self._membership

    def _poll(self, max_records: int, timeout: float) -> list[Record]:
        return self._joined().poll(max_records, timeout)

    def _commit(self, positions: dict[Slot, int]) -> None:
        if self._membership is not None:
            self._membership.commit(positions)

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
        """Commit what the sink stored and leave the group; a later poll joins it again.

        Leaving waits for the group coordinator; if the broker is away that could take long, so the
        wait is bounded and the old member is left to finish on its own thread.
        """
        membership, self._membership = self._membership, None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            if membership is not None:
                future = asyncio.get_running_loop().run_in_executor(executor, membership.leave)
                await asyncio.wait_for(asyncio.shield(future), self._close_timeout)
        except TimeoutError:
            client_log.warning("group %s: leaving took over %.0fs; continuing without waiting",
                               self._group, self._close_timeout)
        finally:
            executor.shutdown(wait=False)
