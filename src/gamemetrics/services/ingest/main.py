"""Builds the ingest service: its routes on the pool and bus it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.middleware import Middleware

from gamemetrics.adapters.memory.ratelimit import TokenBucketLimiter
from gamemetrics.events.validation import Limits
from gamemetrics.observability.tracing import TraceContextMiddleware
from gamemetrics.service import Adapters, Service, database_probe
from gamemetrics.services.ingest.accept import Acceptor
from gamemetrics.services.ingest.app import IngestApp
from gamemetrics.services.ingest.auth import KeyResolver
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The ingest service on `adapters`: native, Segment and original routes, checked against the database and bus."""
    ingest = IngestApp(
        settings,
        KeyResolver(TenancyStore(adapters.pool), settings.key_cache_seconds),
        Acceptor(
            adapters.bus.producer(),
            TokenBucketLimiter(settings.key_rate_events_per_second, settings.key_rate_burst_events),
            Limits.from_settings(settings),
            settings.max_batch_events,
        ),
    )
    yield Service(
        routes=ingest.routes(),
        middleware=[Middleware(TraceContextMiddleware)],
        checks={"database": database_probe(adapters.pool), "bus": adapters.bus.ping},
    )
