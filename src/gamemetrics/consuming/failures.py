"""Where a consumer's batch failed: group, stage, topic, partitions and offsets, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gamemetrics.ports.bus import Record

Stage = Literal["poll", "prepare", "handle", "commit"]


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """The offsets of one partition that a batch held, first and last included."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int


def offset_ranges(records: Sequence[Record]) -> tuple[OffsetRange, ...]:
    """The range each partition of `records` spans, by topic then partition."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for record in records:
        slot = (record.topic, record.partition)
        low, high = spans.get(slot, (record.offset, record.offset))
        spans[slot] = (min(low, record.offset), max(high, record.offset))
    return tuple(OffsetRange(t, p, low, high) for (t, p), (low, high) in sorted(spans.items()))


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """A batch a consumer could not take through: the context every retry log line carries."""

    group: str
    topics: tuple[str, ...]
    stage: Stage
    ranges: tuple[OffsetRange, ...]  # empty when the poll itself failed
    reason: str

    def log_fields(self) -> dict[str, object]:
        """Fields for a structured log line."""
        return {
            "group": self.group,
            "topics": list(self.topics),
            "stage": self.stage,
            "partitions": [f"{r.topic}[{r.partition}]" for r in self.ranges],
            "offsets": [
                {"topic": r.topic, "partition": r.partition, "first": r.first_offset, "last": r.last_offset}
                for r in self.ranges
            ],
            "reason": self.reason,
        }


class BatchFailed(Exception):
    """A stage of the loop failed on a batch; the original error is the cause."""

    def __init__(self, failure: FailedBatch) -> None:
        where = ", ".join(f"{r.topic}[{r.partition}]@{r.first_offset}..{r.last_offset}" for r in failure.ranges)
        super().__init__(f"group {failure.group}: {failure.stage} failed"
                         f" ({where or ', '.join(failure.topics)}): {failure.reason}")
        self.failure = failure


def failed(group: str, topics: Sequence[str], stage: Stage, records: Sequence[Record],
           exc: BaseException) -> BatchFailed:
    """The error to raise, from `exc`, for `records` failing at `stage`."""
    reason = f"{type(exc).__name__}: {exc}"
    return BatchFailed(FailedBatch(group, tuple(topics), stage, offset_ranges(records), reason))
