"""The daily run under `gamemetrics up`: sleep until the configured UTC time, run, repeat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import structlog

from gamemetrics.ports.objects import ObjectStoreError
from gamemetrics.services.retention.archiver import Archiver, RunBusy

log = structlog.get_logger("retention")


def next_run(now: datetime, at: time) -> datetime:
    """The first moment at `at` (UTC) after `now`."""
    candidate = datetime.combine(now.astimezone(UTC).date(), at, tzinfo=UTC)
    return candidate if candidate > now else candidate + timedelta(days=1)


def parse_time(text: str) -> time:
    """`HH:MM` as a time of day."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class DailyRun:
    """The worker: one archive run a day at `at`; a busy lock or an unreachable store waits for the next day."""

    def __init__(self, archiver: Archiver, at: time) -> None:
        self._archiver = archiver
        self._at = at

    async def __call__(self) -> None:
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((next_run(now, self._at) - now).total_seconds())
            try:
                report = await self._archiver.run()
            except RunBusy as exc:
                log.warning("retention run skipped", reason=str(exc))
                continue
            except ObjectStoreError as exc:
                log.error("retention run failed", error=str(exc))
                continue
            log.info("retention run finished", days=len(report.days), failed=len(report.failed))
