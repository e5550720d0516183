"""Builds the ingest service from its adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.events.validation import Limits
from gamemetrics.service import Adapters, Service
from gamemetrics.services.ingest.accept import Acceptor
from gamemetrics.services.ingest.app import IngestApp
from gamemetrics.services.ingest.app import refusals as refusal_handlers
from gamemetrics.services.ingest.auth import KeyResolver
from gamemetrics.services.ingest.refusals import RefusalCounts, RefusalFlusher
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import database_probe


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The ingest service on `adapters`: native, Segment and original routes, checked against the database and bus."""
    caches = adapters.caches
    refusals = RefusalCounts()
    ingest = IngestApp(
        settings,
        # Resolved keys stay in this process (a revoked key is refused within `ingest.key_cache_seconds`).
        KeyResolver(TenancyStore(adapters.pool), LocalMemo(10_000, ttl_seconds=settings.ingest.key_cache_seconds)),
        Acceptor(
            adapters.bus.producer(),
            caches.limiter("ingest.write_key", settings.ingest.key_rate_events_per_second,
                           settings.ingest.key_rate_burst_events),
            Limits.from_settings(settings),
            settings.ingest.max_batch_events,
            refusals,
        ),
        refusals,
    )
    flusher = RefusalFlusher(refusals, adapters.pool, settings.ingest.refusal_flush_seconds)
    yield Service(
        routes=ingest.routes(),
        exception_handlers=refusal_handlers(),
        workers={"refusal counts": flusher.run},
        checks={"database": database_probe(adapters.pool), "bus": adapters.bus.ping,
                **({"cache": caches.ping} if caches.shared else {})},
    )
