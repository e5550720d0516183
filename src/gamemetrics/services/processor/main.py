"""Builds the processor service: the consumer of the raw topic and, on the embedded bus, its trimmer."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog

from gamemetrics.auth.secret import platform_secret
from gamemetrics.events.validation import Limits
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.bus import Trimmable
from gamemetrics.service import Adapters, Service, Worker
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings
from gamemetrics.web.health import database_probe

log = structlog.get_logger("processor")
_TRIM_EVERY_S = 30.0
# A collection walks every tracked object still alive, the batch read ahead included, while the
# cycles it finds are the few a batch's tasks and errors leave behind: one pass every few batches.
_COLLECT_EVERY_BATCHES = 8


def _collect_every(batches: int) -> Callable[[], None]:
    """An after-batch hook that runs a full garbage collection once every `batches` calls."""
    calls = itertools.count(1)

    def maybe_collect() -> None:
        if next(calls) % batches == 0:
            gc.collect()

    return maybe_collect


def consume(processor: Processor) -> Worker:
    """The processor as a worker: cancelling it lets the batch in hand finish and commit first."""

    async def run() -> None:
        # Reference counting frees a batch's objects; the collector is only needed for cycles, and
        # its automatic passes re-scanned each batch's live objects again and again while it was
        # decoded and written. Start-up objects are frozen out of its sight, and a full pass runs
        # between batches.
        gc.collect()
        gc.freeze()
        gc.disable()
        log.info("processor started")
        running = asyncio.ensure_future(processor.run())
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            processor.stop()
            await running
            log.info("processor stopped")
            raise

    return run


def trim(bus: Trimmable, retention_hours: float) -> Worker:
    """Deletes the embedded log's entries every group has passed; Kafka deletes by the topics' retention.ms."""

    async def run() -> None:
        while True:
            await asyncio.sleep(_TRIM_EVERY_S)
            try:
                removed = await bus.trim(retention_hours)
                if removed:
                    log.info("bus trimmed", entries=removed)
            except Exception as exc:  # trimming is housekeeping; the next round tries again
                log.warning("bus trim failed", error=str(exc))

    return run


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The processor on `adapters`: consumes until cancelled, the batch in hand finished and committed first."""
    processor = Processor(
        adapters.bus,
        EventSink(adapters.pool, session_gap=timedelta(seconds=settings.processor.session_gap_seconds),
                  tombstones=Tombstones(platform_secret(settings))),
        limits=Limits.from_settings(settings),
        rates=settings.processor.fx_rates_usd,
        batch_size=settings.processor.batch_events,
        poll_timeout=settings.processor.poll_interval_ms / 1000,
        after_batch=_collect_every(_COLLECT_EVERY_BATCHES),
    )
    workers = {"consume": consume(processor)}
    if isinstance(adapters.bus, Trimmable):
        workers["trim"] = trim(adapters.bus, settings.bus.retention_hours)
    yield Service(workers=workers, checks={"database": database_probe(adapters.pool), "bus": adapters.bus.ping})
