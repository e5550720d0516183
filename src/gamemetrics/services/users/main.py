"""Builds the users service on the adapters it is given: its routes, and the erasure worker beside them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from gamemetrics.audit import AuditLog
from gamemetrics.auth.operators import OperatorStates
from gamemetrics.auth.secret import platform_secret
from gamemetrics.auth.signing import SigningKeyStore
from gamemetrics.auth.tokens import TokenIssuer
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.events.gdpr_requests import RequestCodec
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.service import Adapters, Service
from gamemetrics.services.users.admin import AdminRoutes
from gamemetrics.services.users.clients import ClientStore
from gamemetrics.services.users.eraser import StoreEraser
from gamemetrics.services.users.erasure import ErasureRoutes
from gamemetrics.services.users.export import ExportRoutes
from gamemetrics.services.users.http import refusals
from gamemetrics.services.users.metrics import ErasureBacklog
from gamemetrics.services.users.oauth import OAuthRoutes
from gamemetrics.services.users.operator_admin import OperatorAdminRoutes
from gamemetrics.services.users.operator_state import OperatorSelfRoutes
from gamemetrics.services.users.operators import OperatorRoutes, OperatorStore
from gamemetrics.services.users.players import PlayerRoutes
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import database_probe
from gamemetrics.web.principal import Guard


def signing_keys(settings: Settings, pool: AsyncConnectionPool, secret: bytes) -> SigningKeyStore:
    """The signing keys: rotated after `auth.signing_key_days`, published until their last token expires."""
    return SigningKeyStore(
        pool, secret,
        rotate_after=timedelta(days=settings.auth.signing_key_days),
        retire_after=timedelta(seconds=settings.auth.token_ttl_seconds + settings.auth.leeway_seconds + 3600),
    )


def token_issuer(settings: Settings, keys: SigningKeyStore) -> TokenIssuer:
    return TokenIssuer(keys, issuer=settings.auth.issuer, audience=settings.auth.audience,
                       ttl_s=settings.auth.token_ttl_seconds)


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The users service on `adapters`: identity, players and GDPR routes, and the erasure worker."""
    secret = platform_secret(settings)
    pool, bus = adapters.pool, adapters.bus
    keys = signing_keys(settings, pool, secret)
    issuer = token_issuer(settings, keys)
    tenancy, clients, audit = TenancyStore(pool), ClientStore(pool), AuditLog(secret)
    verifier = token_verifier(settings, pool)
    states = OperatorStates(pool, kept_s=settings.users.operator_state_seconds)
    guard = Guard(verifier, tenancy, subjects=states.check)
    caches = adapters.caches
    tombstones, codec = Tombstones(secret), RequestCodec(secret)
    operators = OperatorStore(pool)
    routes = [
        *OAuthRoutes(
            settings, clients, keys, issuer,
            per_client=caches.limiter("token.client", settings.users.token_rate_per_client_per_second,
                                      settings.users.token_rate_client_burst),
            per_address=caches.limiter("token.address", settings.users.token_rate_per_address_per_second,
                                       settings.users.token_rate_address_burst),
        ).routes(),
        *OperatorRoutes(operators, pool, audit, keys, issuer,
                        caches.limiter("operator.login", settings.users.token_rate_per_client_per_second,
                                       settings.users.token_rate_client_burst),
                        settings.auth.token_ttl_seconds).routes(),
        *OperatorSelfRoutes(Guard(verifier, tenancy), states).routes(),
        *AdminRoutes(pool, guard, tenancy, clients, audit).routes(),
        *OperatorAdminRoutes(pool, guard, operators, audit).routes(),
        *ExportRoutes(pool, guard, tombstones, audit, adapters.objects, adapters.player_exports).routes(),
        *ErasureRoutes(pool, bus, guard, tombstones, codec, audit, adapters.player_data_stores).routes(),
        *PlayerRoutes(settings, pool, guard, tombstones).routes(),
    ]
    # One transaction clears what the spine wrote (events, rollups, dead letters, the profile),
    # then the embedded bus; the registry lists these stores under this service.
    eraser = StoreEraser(pool, bus, bus_retention=timedelta(hours=settings.kafka.retention_hours))
    backlog = ErasureBacklog(pool, interval_s=30.0)
    yield Service(routes=routes, exception_handlers=refusals(), erasers=[eraser],
                  workers={"erasure backlog": backlog.run},
                  checks={"database": database_probe(pool), "bus": bus.ping,
                          **({"cache": caches.ping} if caches.shared else {})})
