"""Builds the analytics service: `/graphql` on the pool it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.routing import Route, WebSocketRoute

from gamemetrics.auth.tokens import TokenVerifier
from gamemetrics.auth.verifier import token_verifier as platform_token_verifier
from gamemetrics.service import Adapters, Service, database_probe
from gamemetrics.services.analytics.app import graphql_app
from gamemetrics.services.analytics.schema import Limits
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.settings import Settings

GRAPHQL_PATH = "/graphql"


def token_verifier(settings: Settings, store: AnalyticsStore) -> TokenVerifier:
    """Tokens checked against the users service's keys, or the provider's JWKS when one is configured."""
    return platform_token_verifier(settings, store.pool)


def graphql_routes(settings: Settings, store: AnalyticsStore) -> list[Any]:
    """`/graphql` for HTTP and WebSocket."""
    endpoint = graphql_app(
        store, token_verifier(settings, store),
        limits=Limits(settings.analytics_max_range_days, settings.analytics_max_minute_days,
                      settings.analytics_live_interval_seconds),
        max_depth=settings.analytics_max_depth, max_aliases=settings.analytics_max_aliases,
        max_cost=settings.analytics_max_cost, cache_entries=settings.analytics_cache_entries,
        version_ttl_s=settings.analytics_version_ttl_ms / 1000,
    )
    return [Route(GRAPHQL_PATH, endpoint, methods=["GET", "POST"]), WebSocketRoute(GRAPHQL_PATH, endpoint)]


def analytics_store(adapters: Adapters, settings: Settings) -> AnalyticsStore:
    """The store reading as the settings' role, each statement bounded by the settings' timeout."""
    return AnalyticsStore(
        adapters.pool, role=settings.analytics_db_role, cache_entries=settings.analytics_cache_entries,
        statement_timeout_ms=settings.analytics_statement_timeout_ms,
        live_interval_s=settings.analytics_live_interval_seconds,
    )


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The analytics service on `adapters` (its pool sized by `analytics_pool_size`)."""
    store = analytics_store(adapters, settings)
    yield Service(routes=graphql_routes(settings, store), checks={"database": database_probe(adapters.pool)})
