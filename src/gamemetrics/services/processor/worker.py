"""The processor loop: poll → decode → store → publish → commit, one batch at a time.

Commit is the last step: a crash anywhere before it means the batch is read again, and the sink's
de-duplication makes the second write a no-op.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec
import structlog

from gamemetrics.events.envelope import partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.observability import metrics
from gamemetrics.ports.bus import EVENTS_DLQ, PROCESSED_EVENTS, RAW_EVENTS, Bus, Consumer, Message
from gamemetrics.services.processor.decode import DeadLetter, EventRow, decode_records
from gamemetrics.services.processor.sink import EventSink, SinkResult

GROUP_ID = "processor"
log = structlog.get_logger("processor")
_json = msgspec.json.Encoder(decimal_format="string")


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
    ) -> None:
        self._bus = bus
        self._sink = sink
        self._limits = limits
        self._rates = rates
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._consumer: Consumer = bus.consumer(GROUP_ID, [RAW_EVENTS])
        self._producer = bus.producer()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self.process_once()
                backoff = 0.1
            except Exception as exc:  # the store or bus is down: read again from the committed offsets
                log.warning("batch failed; retrying from committed offsets", error=str(exc), backoff_s=backoff)
                await self._consumer.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        await self._consumer.close()

    async def process_once(self) -> SinkResult | None:
        """Handle one batch; None when there was nothing to read."""
        records = await self._consumer.poll(self._batch_size, self._poll_timeout)
        if not records:
            return None
        started = time.perf_counter()
        rows, dead = decode_records(records, limits=self._limits, rates=self._rates)
        result = await self._sink.write(rows, dead)
        await self._publish(rows, dead)
        await self._consumer.commit(records)
        metrics.PROCESSOR_BATCH_SIZE.observe(len(records))
        metrics.PROCESSOR_BATCH_LATENCY.observe(time.perf_counter() - started)
        metrics.EVENTS_STORED.inc(result.stored)
        metrics.EVENTS_DUPLICATE.inc(result.duplicates)
        metrics.EVENTS_DEAD_LETTERED.inc(result.dead_lettered)
        if dead:
            for letter in dead[:5]:
                log.info(
                    "dead-lettered", reason=letter.reason, tenant_id=str(letter.tenant_id),
                    topic=letter.record.topic, partition=letter.record.partition, offset=letter.record.offset,
                )
        return result

    async def _publish(self, rows: Sequence[EventRow], dead: Sequence[DeadLetter]) -> None:
        # At-least-once downstream: a replayed batch publishes again; consumers key on event_id.
        if rows:
            await self._producer.send(PROCESSED_EVENTS, [_processed(r) for r in rows])
        if dead:
            await self._producer.send(EVENTS_DLQ, [_dead_letter(d) for d in dead])


def _processed(row: EventRow) -> Message:
    body = {
        "tenant_id": row.tenant_id, "game_id": row.game_id, "event_id": row.event_id,
        "event_type": row.event_type, "name": row.event_name, "player_id": row.player_id,
        "session_id": row.session_id, "timestamp": row.event_time, "received_at": row.received_at,
        "source": row.source, "platform": row.platform, "os": row.os, "app_version": row.app_version,
        "country": row.country, "is_new_player": row.is_new_player, "revenue_usd": row.revenue_usd,
        "properties": msgspec.Raw(row.properties), "context": msgspec.Raw(row.context),
    }
    return Message(partition_key(row.tenant_id, row.player_id), _json.encode(body), {"schema_version": "1"})


def _dead_letter(letter: DeadLetter) -> Message:
    # Kafka Connect's DLQ convention: the original bytes as the value, the why in the headers.
    key = letter.tenant_id.bytes if letter.tenant_id else b""
    headers = {
        "error.reason": letter.reason,
        "source.topic": letter.record.topic,
        "source.partition": str(letter.record.partition),
        "source.offset": str(letter.record.offset),
    }
    return Message(key, letter.record.value, headers)

