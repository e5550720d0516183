"""The processor loop: poll → decode → store → publish → commit, one batch at a time.

Commit is the last step: a crash anywhere before it means the batch is read again, and the sink's
de-duplication makes the second write a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec
import psycopg
import structlog

from gamemetrics.events.envelope import partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.observability import metrics
from gamemetrics.observability.tracing import TRACEPARENT, child_of
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Bus, Consumer, Message, Record
from gamemetrics.services.processor.decode import DeadLetter, EventRow, decode_records
from gamemetrics.services.processor.sink import EventSink, SinkResult

GROUP_ID = "processor"
log = structlog.get_logger("processor")
_json = msgspec.json.Encoder(decimal_format="string")
_PROCESSED_HEADERS = {"schema_version": "1"}
PUBLISH_SLICE = 10_000  # processed messages encoded and sent at a time


@dataclass(slots=True)
class Batch:
    """Records read from the raw topic and what decoding made of them."""

    records: list[Record]
    rows: list[EventRow]
    dead: list[DeadLetter]


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
        self._bus = bus
        self._sink = sink
        self._limits = limits
        self._rates = rates
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._after_batch = after_batch
        self._consumer: Consumer = bus.consumer(GROUP_ID, [RAW_EVENTS])
        self._producer = bus.producer()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Process until stopped. The next batch is read and decoded while this one is written,
        so Python work overlaps the database's; commits still happen strictly in order."""
        backoff = 0.1
        ahead: asyncio.Task[Batch | None] | None = None
        while not self._stopping.is_set():
            try:
                ahead = await self._step(ahead)
                backoff = 0.1
            except Exception as exc:  # the store or bus is down: read again from the committed offsets
                log.warning("batch failed; retrying from committed offsets", error=str(exc), backoff_s=backoff)
                await _discard(ahead)
                ahead = None
                await self._consumer.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            if self._after_batch is not None:  # the batch is out of scope here, so freed already
                self._after_batch()
        await _discard(ahead)  # read ahead but never stored: the next owner reads it again
        await self._consumer.close()

    async def _step(self, ahead: asyncio.Task[Batch | None] | None) -> asyncio.Task[Batch | None] | None:
        """Store the batch read ahead (or read one now) while the next is read; the next's task."""
        batch = await (ahead or self._read())
        if batch is None:
            return None
        following = asyncio.create_task(self._read())
        try:
            await self._store(batch)
        except BaseException:
            await _discard(following)
            raise
        return following

    async def process_once(self) -> SinkResult | None:
        """Read, store and commit one batch; None when there was nothing to read."""
        batch = await self._read()
        return await self._store(batch) if batch is not None else None

    async def _read(self) -> Batch | None:
        records = await self._consumer.poll(self._batch_size, self._poll_timeout)
        if not records:
            return None
        rows, dead = decode_records(records, limits=self._limits, rates=self._rates)
        return Batch(records, rows, dead)

    async def _store(self, batch: Batch) -> SinkResult:
        started = time.perf_counter()
        result = await self._write_isolating(batch, list(batch.rows), list(batch.dead))
        if result.erased_players:  # nothing of an erased player is published, only the redacted dead letter
            batch.rows = [r for r in batch.rows if (r.tenant_id, r.game_id, r.player_id) not in result.erased_players]
            batch.dead.extend(result.erased)
        await self._publish(batch.rows, batch.dead)
        await self._consumer.commit(batch.records)
        metrics.PROCESSOR_BATCH_SIZE.observe(len(batch.records))
        metrics.PROCESSOR_BATCH_LATENCY.observe(time.perf_counter() - started)
        metrics.EVENTS_STORED.inc(result.stored)
        metrics.EVENTS_DUPLICATE.inc(result.duplicates)
        metrics.EVENTS_DEAD_LETTERED.inc(result.dead_lettered)
        for letter in batch.dead[:5]:
            log.info(
                "dead-lettered", reason=letter.reason, tenant_id=str(letter.tenant_id),
                topic=letter.record.topic, partition=letter.record.partition, offset=letter.record.offset,
            )
        return result

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
            if not rows or rows[0].record is None:
                raise
            culprit = rows[0]
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
            await self._producer.send(PROCESSED_EVENTS, _processed_messages(rows[start:start + PUBLISH_SLICE], spans))
        if dead:
            await self._producer.send(EVENTS_DLQ, [_dead_letter(d) for d in dead])


async def _discard(task: asyncio.Task[Batch | None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


class ProcessedEvent(msgspec.Struct, omit_defaults=True):
    """The value of a `player.events.processed` message (schema version 1)."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    player_id: str
    timestamp: datetime
    received_at: datetime
    source: str
    is_new_player: bool
    properties: msgspec.Raw
    context: msgspec.Raw
    name: str | None = None
    session_id: str | None = None
    platform: str | None = None
    os: str | None = None
    app_version: str | None = None
    country: str | None = None
    revenue_usd: Decimal | None = None


def _processed_messages(rows: Sequence[EventRow], spans: dict[str, Mapping[str, str]]) -> list[Message]:
    """The processed message of each row, keyed like the raw one (tenant + player).

    Downstream spans join the sender's trace: the events of one request that a batch stores are
    one processor span, so `spans` maps a request's `traceparent` to the batch's headers for it."""
    tenant_bytes: dict[int, bytes] = {}  # made once per tenant
    messages: list[Message] = []
    for row in rows:
        tenant = tenant_bytes.get(row.tenant_id.int)
        if tenant is None:
            tenant = tenant_bytes[row.tenant_id.int] = row.tenant_id.bytes
        parent = row.record.headers.get(TRACEPARENT) if row.record is not None else None
        headers = _PROCESSED_HEADERS if parent is None else spans.get(parent)
        if headers is None:
            headers = spans[parent] = {**_PROCESSED_HEADERS, TRACEPARENT: child_of(parent)}
        messages.append(_processed(row, partition_key(row.tenant_id, row.player_id, tenant_bytes=tenant), headers))
    return messages


def _processed(row: EventRow, key: bytes, headers: Mapping[str, str]) -> Message:
    """The processed message of `row`, under `key` (its partition key)."""
    body = ProcessedEvent(
        row.tenant_id, row.game_id, row.event_id, row.event_type, row.player_id, row.event_time,
        row.received_at, row.source, row.is_new_player, msgspec.Raw(row.properties), msgspec.Raw(row.context),
        row.event_name, row.session_id, row.platform, row.os, row.app_version, row.country, row.revenue_usd,
    )
    return Message(key, _json.encode(body), headers)


def _dead_letter(letter: DeadLetter) -> Message:
    # Kafka Connect's DLQ convention: the original bytes as the value, the why in the headers.
    key = letter.tenant_id.bytes if letter.tenant_id else b""
    headers = {
        "error.reason": letter.reason,
        "source.topic": letter.record.topic,
        "source.partition": str(letter.record.partition),
        "source.offset": str(letter.record.offset),
    }
    if TRACEPARENT in letter.record.headers:  # the dead letter stays in the trace of the request that sent it
        headers[TRACEPARENT] = child_of(letter.record.headers[TRACEPARENT])
    return Message(key, letter.value, headers)

