"""The processor: raw records → decode → store → publish, on the shared consumer loop.

The loop commits after `store` returns, so a crash anywhere before means the batch is read again,
and the sink's de-duplication makes the second write a no-op. The steps are small: `decode_batch`
and `without_erased` are pure, `_write_isolating` and `_publish` are the I/O, `_count` runs once
the offsets are committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import structlog

from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.validation import Limits
from gamemetrics.observability import metrics, tracing
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Bus, Record
from gamemetrics.services.processor.decode import DeadLetter, EventRow, decode_records
from gamemetrics.services.processor.publish import dead_letter_message, processed_messages
from gamemetrics.services.processor.sink import EventSink, SinkResult

GROUP_ID = "processor"
log = structlog.get_logger("processor")
PUBLISH_SLICE = 10_000  # processed messages encoded and sent at a time


@dataclass(slots=True)
class Batch:
    """Records read from the raw topic, what decoding made of them, and what storing did."""

    records: list[Record]
    rows: list[EventRow]
    dead: list[DeadLetter]
    result: SinkResult | None = None
    started: float = 0.0  # when storing began


def decode_batch(records: list[Record], *, limits: Limits, rates: Mapping[str, Decimal]) -> Batch:
    """The batch of `records`: every one a row to store or a dead letter."""
    rows, dead = decode_records(records, limits=limits, rates=rates)
    return Batch(records, rows, dead)


def without_erased(batch: Batch, result: SinkResult) -> None:
    """Nothing of an erased player is published, only the redacted dead letter the sink wrote."""
    if result.erased_players:
        batch.rows = [r for r in batch.rows if (r.tenant_id, r.game_id, r.player_id) not in result.erased_players]
        batch.dead.extend(result.erased)


class Processor:
    """Consumes `player.events.raw` for one member of the `processor` group."""

    def __init__(
        self,
        bus: Bus,
        sink: EventSink,
        *,
        limits: Limits,
        rates: Mapping[str, Decimal],
        batch_size: int,
        poll_timeout: float = 0.5,
        after_batch: Callable[[], object] | None = None,
    ) -> None:
        self._sink = sink
        self._limits = limits
        self._rates = rates
        self._producer = bus.producer()
        # Read ahead: the next batch is polled and decoded while this one is written, so Python
        # work overlaps the database's.
        self._loop: ConsumerLoop[Batch] = ConsumerLoop(
            bus, GROUP_ID, [RAW_EVENTS], prepare=self._decode, sink=self._store, committed=self._count,
            batch_size=batch_size, poll_timeout=poll_timeout, read_ahead=True, after_batch=after_batch,
        )

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The raw topic's partitions this member owns now."""
        return self._loop.assignment

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run`."""
        self._loop.stop()

    async def run(self) -> None:
        """Process until stopped; after a failure, read again from the committed offsets."""
        await self._loop.run()

    async def process_once(self) -> SinkResult | None:
        """Read, store and commit one batch; None when there was nothing to read."""
        batch = await self._loop.once()
        return batch.result if batch is not None else None

    def _decode(self, records: list[Record]) -> Batch:
        return decode_batch(records, limits=self._limits, rates=self._rates)

    async def _store(self, batch: Batch) -> None:
        batch.started = time.perf_counter()
        result = await self._write_isolating(batch, list(batch.rows), list(batch.dead))
        without_erased(batch, result)
        spans = tracing.current_batch()
        if spans is not None:  # each request's span in this batch says what the batch's write did
            spans.set_attributes({"gamemetrics.events.stored": result.stored,
                                  "gamemetrics.events.duplicates": result.duplicates,
                                  "gamemetrics.events.dead_lettered": result.dead_lettered})
        await self._publish(batch.rows, batch.dead)
        batch.result = result

    def _count(self, batch: Batch) -> None:
        result = batch.result
        assert result is not None, "counted before it was stored"
        metrics.PROCESSOR_BATCH_SIZE.observe(len(batch.records))
        metrics.PROCESSOR_BATCH_LATENCY.observe(time.perf_counter() - batch.started)
        metrics.EVENTS_STORED.inc(result.stored)
        metrics.EVENTS_DUPLICATE.inc(result.duplicates)
        metrics.EVENTS_DEAD_LETTERED.inc(result.dead_lettered)
        for letter in batch.dead[:5]:
            log.info(
                "dead-lettered", reason=letter.reason, tenant_id=str(letter.tenant_id),
                topic=letter.record.topic, partition=letter.record.partition, offset=letter.record.offset,
            )

    async def _write_isolating(self, batch: Batch, rows: list[EventRow], dead: list[DeadLetter]) -> SinkResult:
        """Write `rows`; when the database refuses a value, halve until the culprit is alone and
        dead-letter it, so one bad event never stalls its partition. Each half is its own
        transaction, which is safe because every write is idempotent and the offsets commit last."""
        try:
            return await self._sink.write(rows, dead)
        except (psycopg.DataError, psycopg.errors.CheckViolation) as exc:
            if len(rows) > 1:
                middle = len(rows) // 2
                first = await self._write_isolating(batch, rows[:middle], dead)
                second = await self._write_isolating(batch, rows[middle:], [])
                return SinkResult(
                    first.stored + second.stored,
                    first.duplicates + second.duplicates,
                    first.dead_lettered + second.dead_lettered,
                    first.erased + second.erased,
                    first.erased_players | second.erased_players,
                )
            culprit = rows[0] if rows else None
            if culprit is None or culprit.record is None:
                raise
            letter = DeadLetter(
                culprit.record, f"the store refused this event: {exc.diag.message_primary or exc}",
                culprit.tenant_id, culprit.game_id, str(culprit.event_id),
            )
            batch.rows.remove(culprit)
            batch.dead.append(letter)
            return await self._sink.write([], [*dead, letter])

    async def _publish(self, rows: Sequence[EventRow], dead: Sequence[DeadLetter]) -> None:
        # At-least-once downstream: a replayed batch publishes again; consumers key on event_id.
        # In slices: a batch's encoded messages would otherwise all be alive at once, beside the
        # batch itself and the next one being read (~1 KB an event).
        spans: dict[str, Mapping[str, str]] = {}
        for start in range(0, len(rows), PUBLISH_SLICE):
            await self._producer.send(PROCESSED_EVENTS, processed_messages(rows[start:start + PUBLISH_SLICE], spans))
        if dead:
            await self._producer.send(EVENTS_DLQ, [dead_letter_message(d) for d in dead])
