"""The Bus port: topics of keyed partitions, producers, consumer groups and committed offsets.

The contract follows Kafka's semantics so either adapter can sit behind it: a key always lands
in the same partition, order holds within a partition, delivery is at-least-once, and a consumer
commits a position only after its sink has committed what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec

RAW_EVENTS = "player.events.raw"
PROCESSED_EVENTS = "player.events.processed"
EVENTS_DLQ = "player.events.dlq"
NOTIFICATION_REQUESTS = "notifications.requests"
NOTIFICATIONS_DLQ = "notifications.dlq"
GDPR_REQUESTS = "gdpr.requests"

ALL_TOPICS = (RAW_EVENTS, PROCESSED_EVENTS, EVENTS_DLQ, NOTIFICATION_REQUESTS, NOTIFICATIONS_DLQ, GDPR_REQUESTS)


class BusError(Exception):
    """The bus could not durably take or hand out messages; producers answer 503, consumers retry."""


# Messages and records are msgspec Structs that the garbage collector never tracks (they hold
# bytes, numbers and a mapping of strings, so they cannot be part of a cycle): the services make
# one per event, and each of the processor's collections between batches would walk them all.
class Message(msgspec.Struct, frozen=True, gc=False):
    """One message to append: the key picks the partition."""

    key: bytes
    value: bytes
    headers: Mapping[str, str] = {}


class Record(msgspec.Struct, frozen=True, gc=False):
    """One message as read back, with where it sits in the log."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one consumer group is behind the end of one partition."""

    group_id: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class Producer(Protocol):
    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        """Append `messages`; return only once every one is durably stored, else raise BusError."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


class Consumer(Protocol):
    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now; no two members of a group share one."""
        ...

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to `max_records` records past this consumer's positions, waiting at most `timeout` s."""
        ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit the group's position past every record given (call after the sink commits)."""
        ...

    async def close(self) -> None:
        """Leave the group; uncommitted records will be delivered again to whoever takes over (this
        member too: a later poll joins the group again, from the committed positions)."""
        ...


class Bus(Protocol):
    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        """Create missing topics with the given partition counts (idempotent)."""
        ...

    def producer(self) -> Producer:
        """A producer; cheap to make, share one per process."""
        ...

    def consumer(self, group_id: str, topics: Sequence[str]) -> Consumer:
        """A member of `group_id` reading `topics` from the group's committed positions."""
        ...

    async def lag(self) -> list[PartitionLag]:
        """Committed position and log end for every group and partition."""
        ...

    async def ping(self) -> None:
        """Raise BusError if the bus cannot be reached."""
        ...

    async def close(self) -> None:
        """Flush the shared producer and release the bus's clients (its consumers are closed by their owners)."""
        ...


@runtime_checkable
class Trimmable(Protocol):
    """A bus whose old entries the platform deletes itself (the embedded log; Kafka has retention.ms)."""

    async def trim(self, retention_hours: float) -> int:
        """Delete entries every group has passed, and unread ones older than the retention; how many."""
        ...


@runtime_checkable
class Erasable(Protocol):
    """A bus whose messages the platform can delete, for GDPR erasure (the embedded log). Kafka's
    log is immutable: there a player's messages leave with the topic's retention.ms."""

    async def erase(self, topic: str, key: bytes, match: Callable[[bytes], bool] | None = None) -> int:
        """Delete the messages of `topic` with `key` (and, when `match` is given, whose value it
        accepts); how many were deleted."""
        ...
