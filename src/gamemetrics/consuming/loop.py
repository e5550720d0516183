"""The consumer loop: poll a batch, prepare it, hand it to the sink, commit; on failure, read again.

Commit is the last step of a round: a crash or an error anywhere before it means the batch is read
again from the group's committed offsets, and the sinks' idempotence makes the repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from gamemetrics.consuming.backoff import Backoff
from gamemetrics.consuming.failures import BatchFailed, failed
from gamemetrics.observability import metrics, tracing
from gamemetrics.ports.bus import Bus, Record

B = TypeVar("B")
log = structlog.get_logger("consumer")


@dataclass(slots=True)
class _Taken(Generic[B]):
    """A polled batch: its records (to commit) and what `prepare` made of them (for the sink)."""

    records: list[Record]
    batch: B


class ConsumerLoop(Generic[B]):
    """One member of `group` reading `topics`, round after round until stopped or cancelled.

    A round: poll up to `batch_size` records, `prepare` them (pure work such as decoding), await
    `sink` on the result, commit the records' offsets, call `committed`. With `read_ahead`, the
    next batch is polled and prepared while the sink handles this one, so Python work overlaps
    the sink's I/O; commits still happen strictly in order. A failing stage is logged with its
    group, topic, partitions, offsets and traceback and counted; the member then leaves the group
    (`Consumer.close`), waits out a jittered exponential backoff, and polls again, which starts
    from the committed offsets on both adapters. With tracing on, handling a batch is a consumer
    span in the trace of each sender whose records it holds (`tracing.BatchSpans`).
    """

    def __init__(
        self,
        bus: Bus,
        group: str,
        topics: Sequence[str],
        *,
        prepare: Callable[[list[Record]], B],
        sink: Callable[[B], Awaitable[object]],
        committed: Callable[[B], object] | None = None,
        batch_size: int,
        poll_timeout: float,
        read_ahead: bool = False,
        after_batch: Callable[[], object] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._group = group
        self._topics = tuple(topics)
        self._consumer = bus.consumer(group, topics)
        self._prepare = prepare
        self._sink = sink
        self._committed = committed
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._read_ahead = read_ahead
        self._after_batch = after_batch
        self._backoff = backoff or Backoff()
        self._stopping = asyncio.Event()

    @property
    def group(self) -> str:
        return self._group

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now."""
        return self._consumer.assignment

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Take batches through until stopped; cancellation propagates at once."""
        ahead: asyncio.Task[_Taken[B] | None] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    ahead = await self._step(ahead)
                    self._backoff.reset()
                except BatchFailed as exc:
                    ahead = None  # settled by the failed step
                    await self._recover(exc)
                if self._after_batch is not None:  # the round's batch is out of scope here, so freed already
                    self._after_batch()
        finally:
            await _discard(ahead)  # read ahead but never handled: the next owner reads it again
            await self._close()

    async def once(self) -> B | None:
        """Poll, prepare, handle and commit one batch; None when there was nothing to read."""
        taken = await self._take()
        if taken is None:
            return None
        await self._handle(taken)
        return taken.batch

    async def _step(self, ahead: asyncio.Task[_Taken[B] | None] | None) -> asyncio.Task[_Taken[B] | None] | None:
        """Handle the batch read ahead (or read one now) while the next is read; the next's task."""
        taken = await (ahead or self._take())
        if taken is None:
            return None
        following = asyncio.create_task(self._take()) if self._read_ahead else None
        try:
            await self._handle(taken)
        except BaseException:
            await _discard(following)
            raise
        return following

    async def _take(self) -> _Taken[B] | None:
        try:
            records = await self._consumer.poll(self._batch_size, self._poll_timeout)
        except Exception as exc:
            raise failed(self._group, self._topics, "poll", [], exc) from exc
        if not records:
            return None
        try:
            return _Taken(records, self._prepare(records))
        except Exception as exc:
            raise failed(self._group, self._topics, "prepare", records, exc) from exc

    async def _handle(self, taken: _Taken[B]) -> None:
        spans = tracing.batch_spans(taken.records, group=self._group, topics=self._topics)
        if spans is None:
            await self._handle_untraced(taken)
            return
        with spans.handling():
            await self._handle_untraced(taken)

    async def _handle_untraced(self, taken: _Taken[B]) -> None:
        try:
            await self._sink(taken.batch)
        except Exception as exc:
            raise failed(self._group, self._topics, "handle", taken.records, exc) from exc
        try:
            await self._consumer.commit(taken.records)
        except Exception as exc:
            raise failed(self._group, self._topics, "commit", taken.records, exc) from exc
        if self._committed is not None:
            try:
                self._committed(taken.batch)
            except Exception as exc:
                raise failed(self._group, self._topics, "handle", taken.records, exc) from exc

    async def _recover(self, exc: BatchFailed) -> None:
        """Log and count the failure, leave the group, and wait out the backoff (or a stop)."""
        delay = self._backoff.next_delay()
        metrics.CONSUMER_FAILURES.labels(group=self._group).inc()
        log.warning("batch failed; reading again from the committed offsets", **exc.failure.log_fields(),
                    failures_in_a_row=self._backoff.failures, backoff_s=round(delay, 3),
                    exc_info=exc.__cause__ or exc)
        await self._close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _close(self) -> None:
        try:
            await self._consumer.close()
        except Exception:  # the next poll joins afresh; leaving is best effort
            log.warning("leaving the group failed", group=self._group, topics=list(self._topics), exc_info=True)


async def _discard(task: asyncio.Task[_Taken[B] | None] | None) -> None:
    """Cancel `task` and wait until it has ended, without taking its result or error; a
    cancellation of the caller while it waits propagates."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: its records are read again, so its error is no news
