"""Builds the users ASGI app: its resources opened in the lifespan, the erasure worker beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.adapters.memory.ratelimit import TokenBucketLimiter
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.auth.signing import SigningKeyStore
from gamemetrics.auth.tokens import TokenIssuer
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.events.gdpr_requests import RequestCodec
from gamemetrics.gdpr.consumer import ErasureConsumer
from gamemetrics.gdpr.erasers import expected_stores
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.observability import metrics
from gamemetrics.runtime import connect
from gamemetrics.services.shared.health import HealthCheck, health_routes
from gamemetrics.services.users.admin import AdminRoutes
from gamemetrics.services.users.clients import ClientStore
from gamemetrics.services.users.eraser import StoreEraser
from gamemetrics.services.users.erasure import ErasureRoutes
from gamemetrics.services.users.export import ExportRoutes
from gamemetrics.services.users.http import Guard
from gamemetrics.services.users.oauth import OAuthRoutes
from gamemetrics.services.users.operators import OperatorRoutes, OperatorStore
from gamemetrics.services.users.players import PlayerRoutes
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore


def signing_keys(settings: Settings, pool: object, secret: bytes) -> SigningKeyStore:
    """The signing keys: rotated after `auth_signing_key_days`, published until their last token expires."""
    return SigningKeyStore(
        pool, secret,  # type: ignore[arg-type]
        rotate_after=timedelta(days=settings.auth_signing_key_days),
        retire_after=timedelta(seconds=settings.auth_token_ttl_seconds + settings.auth_leeway_seconds + 3600),
    )


def token_issuer(settings: Settings, keys: SigningKeyStore) -> TokenIssuer:
    return TokenIssuer(keys, issuer=settings.auth_issuer, audience=settings.auth_audience,
                       ttl_s=settings.auth_token_ttl_seconds)


def create_app(settings: Settings, url: str) -> Starlette:
    """The users service on the database at `url`."""
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        secret = platform_secret(settings)
        async with connect(settings, url, name="users", pool_size=settings.users_pool_size) as platform:
            pool = platform.pool
            keys = signing_keys(settings, pool, secret)
            issuer = token_issuer(settings, keys)
            guard = Guard(token_verifier(settings, pool))
            tenancy, clients, audit = TenancyStore(pool), ClientStore(pool), AuditLog(secret)
            tombstones, codec = Tombstones(secret), RequestCodec(secret)
            eraser = StoreEraser(pool, platform.bus, bus_retention=timedelta(hours=settings.kafka_retention_hours))
            stores = expected_stores([eraser])

            async def database() -> None:
                async with pool.connection(timeout=2.0) as conn:
                    await conn.execute("SELECT 1")

            async def prometheus(request: Request) -> Response:
                body, content_type = metrics.render()
                return Response(body, media_type=content_type)

            app.router.routes.extend([
                *OAuthRoutes(
                    settings, clients, keys, issuer,
                    per_client=TokenBucketLimiter(settings.token_rate_per_client_per_second,
                                                  settings.token_rate_client_burst),
                    per_address=TokenBucketLimiter(settings.token_rate_per_address_per_second,
                                                   settings.token_rate_address_burst),
                ).routes(),
                *OperatorRoutes(OperatorStore(pool), pool, audit, keys, issuer,
                                TokenBucketLimiter(settings.token_rate_per_client_per_second,
                                                   settings.token_rate_client_burst),
                                settings.auth_token_ttl_seconds).routes(),
                *AdminRoutes(pool, guard, tenancy, clients, audit).routes(),
                *ExportRoutes(pool, guard, tenancy, tombstones, audit).routes(),
                *ErasureRoutes(pool, platform.bus, guard, tenancy, tombstones, codec, audit, stores).routes(),
                *PlayerRoutes(settings, pool, guard, tenancy, tombstones).routes(),
                Route("/metrics", prometheus, methods=["GET"]),
                *health_routes(HealthCheck({"database": database, "bus": platform.bus.ping})),
            ])
            worker = ErasureConsumer(pool, platform.bus, eraser, expected=stores, codec=codec, tombstones=tombstones,
                                     audit=audit)
            task = asyncio.create_task(worker.run(), name="erasure-worker")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return Starlette(lifespan=lifespan)
