"""Builds the users ASGI app: its resources opened in the lifespan, the erasure worker beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette

from gamemetrics.adapters.caching import open_caching
from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.auth.signing import SigningKeyStore
from gamemetrics.auth.tokens import TokenIssuer
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.gdpr.messages import RequestCodec
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.runtime import connect
from gamemetrics.services.users.admin import AdminRoutes
from gamemetrics.services.users.clients import ClientStore
from gamemetrics.services.users.erasure import ErasureRoutes, ErasureWorker
from gamemetrics.services.users.export import ExportRoutes
from gamemetrics.services.users.http import refusals
from gamemetrics.services.users.oauth import OAuthRoutes
from gamemetrics.services.users.operators import OperatorRoutes, OperatorStore
from gamemetrics.services.users.players import PlayerRoutes
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import HealthCheck, database_probe, health_routes
from gamemetrics.web.metrics import metrics_route
from gamemetrics.web.principal import Guard


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
        async with connect(settings, url, name="users", pool_size=settings.users_pool_size) as platform, \
                open_caching(settings.cache) as caching:
            pool = platform.pool
            keys = signing_keys(settings, pool, secret)
            issuer = token_issuer(settings, keys)
            tenancy, clients, audit = TenancyStore(pool), ClientStore(pool), AuditLog(secret)
            guard = Guard(token_verifier(settings, pool), tenancy)
            tombstones, codec = Tombstones(secret), RequestCodec(secret)

            app.router.routes.extend([
                *OAuthRoutes(
                    settings, clients, keys, issuer,
                    per_client=caching.limiter("token.client", settings.token_rate_per_client_per_second,
                                               settings.token_rate_client_burst),
                    per_address=caching.limiter("token.address", settings.token_rate_per_address_per_second,
                                                settings.token_rate_address_burst),
                ).routes(),
                *OperatorRoutes(OperatorStore(pool), pool, audit, keys, issuer,
                                caching.limiter("operator.login", settings.token_rate_per_client_per_second,
                                                settings.token_rate_client_burst),
                                settings.auth_token_ttl_seconds).routes(),
                *AdminRoutes(pool, guard, tenancy, clients, audit).routes(),
                *ExportRoutes(pool, guard, tombstones, audit).routes(),
                *ErasureRoutes(pool, platform.bus, guard, tombstones, codec, audit).routes(),
                *PlayerRoutes(settings, pool, guard, tombstones).routes(),
                metrics_route(),
                *health_routes(HealthCheck({"database": database_probe(pool), "bus": platform.bus.ping,
                                            **({"cache": caching.ping} if caching.shared else {})})),
            ])
            worker = ErasureWorker(pool, platform.bus, tombstones, codec, audit,
                                   bus_retention=timedelta(hours=settings.kafka_retention_hours))
            task = asyncio.create_task(worker.run(), name="erasure-worker")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return Starlette(lifespan=lifespan, exception_handlers=refusals())
