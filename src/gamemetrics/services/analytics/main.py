"""Builds the analytics service from its adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.routing import Route, WebSocketRoute

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.auth.operators import OperatorStates
from gamemetrics.auth.tokens import TokenVerifier
from gamemetrics.auth.verifier import token_verifier as platform_token_verifier
from gamemetrics.service import Adapters, Service
from gamemetrics.services.analytics.app import graphql_app, refusals
from gamemetrics.services.analytics.responses import TenantVersions
from gamemetrics.services.analytics.schema import Limits
from gamemetrics.services.analytics.store import AnalyticsStore
from gamemetrics.settings import Settings
from gamemetrics.web.graphiql_assets import assets_route
from gamemetrics.web.health import database_probe

GRAPHQL_PATH = "/graphql"


def token_verifier(settings: Settings, store: AnalyticsStore) -> TokenVerifier:
    """Tokens checked against the users service's keys, or the provider's JWKS when one is configured."""
    return platform_token_verifier(settings, store.pool)


def graphql_routes(settings: Settings, store: AnalyticsStore) -> list[Any]:
    """`/graphql` for HTTP and WebSocket, and GraphiQL's scripts and styles under `/graphql/assets/`."""
    version_ttl = settings.analytics.version_ttl_ms / 1000
    endpoint = graphql_app(
        store, token_verifier(settings, store),
        limits=Limits(settings.analytics.max_range_days, settings.analytics.max_minute_days,
                      settings.analytics.live_interval_seconds),
        max_depth=settings.analytics.max_depth, max_aliases=settings.analytics.max_aliases,
        max_cost=settings.analytics.max_cost, answers=LocalMemo(settings.analytics.cache_entries),
        versions=TenantVersions(store, version_ttl, LocalMemo(100_000, ttl_seconds=version_ttl)),
        verified=LocalMemo(10_000, ttl_seconds=60),
        subjects=OperatorStates(store.pool, kept_s=settings.users.operator_state_seconds).check,
    )
    return [Route(GRAPHQL_PATH, endpoint, methods=["GET", "POST"]), WebSocketRoute(GRAPHQL_PATH, endpoint),
            assets_route()]


def analytics_store(adapters: Adapters, settings: Settings) -> AnalyticsStore:
    """The store reading as the settings' role, each statement bounded by the settings' timeout."""
    return AnalyticsStore(
        adapters.pool, role=settings.analytics.db_role, answers=LocalMemo(settings.analytics.cache_entries),
        live=LocalMemo(10_000, ttl_seconds=settings.analytics.live_interval_seconds / 2),
        statement_timeout_ms=settings.analytics.statement_timeout_ms,
        live_interval_s=settings.analytics.live_interval_seconds,
    )


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The analytics service on `adapters` (its pool sized by `analytics.pool_size`)."""
    store = analytics_store(adapters, settings)
    yield Service(routes=graphql_routes(settings, store), exception_handlers=refusals(),
                  checks={"database": database_probe(adapters.pool)})
