"""Which keys a service checks tokens with: the users service's keys (from the platform's
database, the same set `/.well-known/jwks.json` publishes), or an external OIDC provider's JWKS."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from gamemetrics.auth.keys import KeySource, RemoteJwks
from gamemetrics.auth.signing import DatabaseKeySet
from gamemetrics.auth.tokens import TokenVerifier
from gamemetrics.settings import Settings


def key_source(settings: Settings, pool: AsyncConnectionPool) -> KeySource:
    """The provider's JWKS when `GAMEMETRICS_AUTH_JWKS_URL` is set, else the built-in issuer's keys."""
    if settings.auth.jwks_url:
        return RemoteJwks(settings.auth.jwks_url)
    return DatabaseKeySet(pool)


def token_verifier(settings: Settings, pool: AsyncConnectionPool) -> TokenVerifier:
    """A verifier with the settings' issuer, audience and leeway."""
    return TokenVerifier(key_source(settings, pool), issuer=settings.auth.issuer, audience=settings.auth.audience,
                         leeway_s=settings.auth.leeway_seconds)
