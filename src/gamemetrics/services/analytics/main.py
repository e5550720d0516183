"""Builds the analytics ASGI app with its pool opened in the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.auth.tokens import TokenVerifier
from gamemetrics.auth.verifier import token_verifier as platform_token_verifier
from gamemetrics.services.analytics.app import graphql_app, refusals
from gamemetrics.services.analytics.responses import TenantVersions
from gamemetrics.services.analytics.schema import Limits
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.settings import Settings
from gamemetrics.web.health import HealthCheck, database_probe, health_routes
from gamemetrics.web.metrics import metrics_route

GRAPHQL_PATH = "/graphql"


def token_verifier(settings: Settings, store: AnalyticsStore) -> TokenVerifier:
    """Tokens checked against the users service's keys, or the provider's JWKS when one is configured."""
    return platform_token_verifier(settings, store.pool)


def graphql_routes(settings: Settings, store: AnalyticsStore) -> list[Any]:
    """`/graphql` for HTTP and WebSocket."""
    version_ttl = settings.analytics_version_ttl_ms / 1000
    endpoint = graphql_app(
        store, token_verifier(settings, store),
        limits=Limits(settings.analytics_max_range_days, settings.analytics_max_minute_days,
                      settings.analytics_live_interval_seconds),
        max_depth=settings.analytics_max_depth, max_aliases=settings.analytics_max_aliases,
        max_cost=settings.analytics_max_cost, answers=LocalMemo(settings.analytics_cache_entries),
        versions=TenantVersions(store, version_ttl, LocalMemo(100_000, ttl_seconds=version_ttl)),
        verified=LocalMemo(10_000, ttl_seconds=60),
    )
    return [Route(GRAPHQL_PATH, endpoint, methods=["GET", "POST"]), WebSocketRoute(GRAPHQL_PATH, endpoint)]


@asynccontextmanager
async def analytics_resources(settings: Settings, url: str) -> AsyncIterator[tuple[AnalyticsStore, HealthCheck]]:
    """The pool and store of the service, and its readiness probe."""
    pool = await open_pool(url, max_size=settings.analytics_pool_size, name="analytics")
    try:
        store = AnalyticsStore(
            pool, role=settings.analytics_db_role, answers=LocalMemo(settings.analytics_cache_entries),
            live=LocalMemo(10_000, ttl_seconds=settings.analytics_live_interval_seconds / 2),
            statement_timeout_ms=settings.analytics_statement_timeout_ms,
            live_interval_s=settings.analytics_live_interval_seconds,
        )
        yield store, HealthCheck({"database": database_probe(pool)})
    finally:
        await pool.close()


def create_app(settings: Settings, url: str) -> Starlette:
    """The analytics service on its own: /graphql, health and metrics."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with analytics_resources(settings, url) as (store, health):
            app.router.routes.extend([*graphql_routes(settings, store), metrics_route(), *health_routes(health)])
            yield

    return Starlette(lifespan=lifespan, exception_handlers=refusals())
