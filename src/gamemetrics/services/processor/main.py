"""Runs the processor worker until SIGTERM or SIGINT, trimming the embedded bus as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import signal
from collections.abc import Callable
from datetime import timedelta

import structlog

from gamemetrics.auth.secret import platform_secret
from gamemetrics.events.validation import Limits
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.bus import Trimmable
from gamemetrics.runtime import connect
from gamemetrics.services.processor.sink import EventSink
from gamemetrics.services.processor.worker import Processor
from gamemetrics.settings import Settings

log = structlog.get_logger("processor")
_TRIM_EVERY_S = 30.0
# A collection walks every tracked object still alive, the batch read ahead included, while the
# cycles it finds are the few a batch's tasks and errors leave behind.
_COLLECT_EVERY_BATCHES = 8


def _collect_every(batches: int) -> Callable[[], None]:
    """An after-batch hook that runs a full garbage collection once every `batches` calls."""
    calls = itertools.count(1)

    def maybe_collect() -> None:
        if next(calls) % batches == 0:
            gc.collect()

    return maybe_collect


async def run_processor(settings: Settings, url: str) -> None:
    """Consume until told to stop; the batch in hand is finished and committed first."""
    async with connect(settings, url, name="processor", pool_size=4) as platform:
        processor = Processor(
            platform.bus,
            EventSink(platform.pool, session_gap=timedelta(seconds=settings.session_gap_seconds),
                      tombstones=Tombstones(platform_secret(settings))),
            limits=Limits.from_settings(settings),
            rates=settings.fx_rates_usd,
            batch_size=settings.processor_batch_events,
            poll_timeout=settings.processor_poll_interval_ms / 1000,
            after_batch=_collect_every(_COLLECT_EVERY_BATCHES),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, processor.stop)

        async def trim_forever(bus: Trimmable) -> None:
            while True:
                await asyncio.sleep(_TRIM_EVERY_S)
                try:
                    removed = await bus.trim(settings.bus_retention_hours)
                    if removed:
                        log.info("bus trimmed", entries=removed)
                except Exception as exc:  # trimming is housekeeping; the next round tries again
                    log.warning("bus trim failed", error=str(exc))

        # Kafka deletes old segments by the topics' retention.ms; the embedded log is trimmed here.
        trimmer = asyncio.create_task(trim_forever(platform.bus)) if isinstance(platform.bus, Trimmable) else None
        # Reference counting frees a batch's objects; the collector is only needed for cycles, and
        # its automatic passes re-scanned each batch's live objects again and again while it was
        # decoded and written.
        # Start-up objects are frozen out of its sight, and a full pass runs between batches.
        gc.collect()
        gc.freeze()
        gc.disable()
        log.info("processor started")
        try:
            await processor.run()
        finally:
            if trimmer is not None:
                trimmer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await trimmer
        log.info("processor stopped")
