"""Builds the ingest ASGI app with its resources opened in the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gamemetrics.adapters.caching import open_caching
from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.events.validation import Limits
from gamemetrics.observability.tracing import TraceContextMiddleware
from gamemetrics.runtime import connect
from gamemetrics.services.ingest.accept import Acceptor
from gamemetrics.services.ingest.app import IngestApp, refusals
from gamemetrics.services.ingest.auth import KeyResolver
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import HealthCheck, database_probe


def create_app(settings: Settings, url: str) -> Starlette:
    """The ingest service on the database at `url`."""
    # The pool and bus must be opened on the server's own event loop, so the routes that use them
    # are added once the lifespan has opened them, before the first request is served.
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with connect(settings, url, name="ingest", pool_size=8) as platform, \
                open_caching(settings.cache) as caching:
            ingest = IngestApp(
                settings,
                KeyResolver(TenancyStore(platform.pool), LocalMemo(10_000, ttl_seconds=settings.key_cache_seconds)),
                Acceptor(
                    platform.bus.producer(),
                    caching.limiter("ingest.write_key", settings.key_rate_events_per_second,
                                    settings.key_rate_burst_events),
                    Limits.from_settings(settings),
                    settings.max_batch_events,
                ),
                HealthCheck({"database": database_probe(platform.pool), "bus": platform.bus.ping,
                             **({"cache": caching.ping} if caching.shared else {})}),
            )
            app.router.routes.extend(ingest.routes())
            yield

    return Starlette(lifespan=lifespan, middleware=[Middleware(TraceContextMiddleware)], exception_handlers=refusals())
