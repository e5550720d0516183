"""OAuth2 client-credentials grant (RFC 6749 §4.4) at `/oauth/token`, the JWKS and the
authorization server metadata (RFC 8414)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote_plus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.auth.signing import SigningKeyStore
from gamemetrics.auth.tokens import TokenIssuer
from gamemetrics.ports.cache import CacheError, RateLimiter
from gamemetrics.services.users.clients import CLIENT_ID_PREFIX, SCOPES, ClientStore
from gamemetrics.services.users.metrics import TOKEN_REQUESTS
from gamemetrics.settings import Settings
from gamemetrics.web.errors import ApiError, retry_after
from gamemetrics.web.responses import json_response

TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM_BYTES = 8 * 1024


def oauth_error(status: int, code: str, description: str, headers: dict[str, str] | None = None) -> ApiError:
    """An error in RFC 6749 §5.2's shape."""
    return ApiError(status, description, code=code, headers={**_NO_STORE, **(headers or {})})


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    basic: bool


def client_credentials(authorization: str, form: dict[str, list[str]]) -> ClientCredentials:
    """The client's id and secret from HTTP Basic (RFC 6749 §2.3.1: each part form-urlencoded) or
    from the form; a request that uses both, or neither, is refused."""
    scheme, _, encoded = authorization.partition(" ")
    in_form = "client_id" in form or "client_secret" in form
    if scheme.lower() == "basic" and encoded.strip():
        if in_form:
            raise oauth_error(400, "invalid_request", "authenticate with HTTP Basic or the form, not both")
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if not sep or not user:
            raise oauth_error(401, "invalid_client", "HTTP Basic credentials are not base64 of id:secret",
                              {"WWW-Authenticate": 'Basic realm="gamemetrics"'})
        return ClientCredentials(unquote_plus(user), unquote_plus(password), basic=True)
    ids, secrets_ = form.get("client_id", []), form.get("client_secret", [])
    if len(ids) == 1 and len(secrets_) == 1:
        return ClientCredentials(ids[0], secrets_[0], basic=False)
    raise oauth_error(401, "invalid_client", "client authentication is required: HTTP Basic, or client_id and"
                      " client_secret in the form", {"WWW-Authenticate": 'Basic realm="gamemetrics"'})


class OAuthRoutes:
    """The token endpoint and discovery documents of the built-in issuer."""

    def __init__(self, settings: Settings, clients: ClientStore, signing: SigningKeyStore, issuer: TokenIssuer,
                 *, per_client: RateLimiter, per_address: RateLimiter) -> None:
        self._settings = settings
        self._clients = clients
        self._signing = signing
        self._issuer = issuer
        self._per_client = per_client
        self._per_address = per_address

    async def token(self, request: Request) -> Response:
        try:
            response = await self._token(request)
        except ApiError as refused:
            TOKEN_REQUESTS.labels(refused.code or str(refused.status)).inc()
            raise
        TOKEN_REQUESTS.labels("issued").inc()
        return response

    async def _token(self, request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        await self._limit(self._per_address, f"address:{address}")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise oauth_error(400, "invalid_request", "send the token request as application/x-www-form-urlencoded")
        body = await _bounded_body(request)
        try:
            form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise oauth_error(400, "invalid_request", "the form is not UTF-8") from None
        repeated = sorted(name for name, values in form.items() if len(values) > 1)
        if repeated:
            raise oauth_error(400, "invalid_request", f"parameters sent more than once: {', '.join(repeated)}")
        credentials = client_credentials(request.headers.get("authorization", ""), form)
        # Made-up ids share one bucket: they cannot grow the limiter's table without bound.
        known_shape = credentials.client_id.startswith(CLIENT_ID_PREFIX) and len(credentials.client_id) <= 40
        await self._limit(self._per_client, f"client:{credentials.client_id if known_shape else '?'}")
        grant = form.get("grant_type", [""])[0]
        if not grant:
            raise oauth_error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise oauth_error(400, "unsupported_grant_type", "only the client_credentials grant is supported")
        if self._settings.auth.jwks_url:
            raise oauth_error(400, "unsupported_grant_type",
                              "this platform accepts tokens from the external issuer "
                              f"{self._settings.auth.issuer}; ask it for tokens")
        client = await self._clients.authenticate(credentials.client_id, credentials.client_secret)
        if client is None:
            raise oauth_error(401, "invalid_client", "unknown client, wrong secret, or a revoked client",
                              {"WWW-Authenticate": 'Basic realm="gamemetrics"'} if credentials.basic else None)
        asked = form.get("scope", [""])[0].split()
        if any(scope not in client.scopes for scope in asked):
            refused = sorted(set(asked) - client.scopes)
            raise oauth_error(400, "invalid_scope", f"this client may not ask for {', '.join(refused)}")
        granted = sorted(set(asked) if asked else client.scopes)
        await self._signing.current()
        ttl = self._settings.auth.token_ttl_seconds
        token = self._issuer.issue(client.tenant_id, granted, subject=client.client_id, ttl_s=ttl)
        return json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                              "scope": " ".join(granted)}, headers=_NO_STORE)

    async def _limit(self, limiter: RateLimiter, key: str) -> None:
        try:
            wait = await limiter.take(key, 1)
        except CacheError as exc:
            raise oauth_error(503, "temporarily_unavailable", f"the rate limiter cannot be reached ({exc})",
                              {"Retry-After": "1"}) from exc
        if wait > 0:
            raise oauth_error(429, "slow_down", f"too many token requests; retry in {wait:.1f} s",
                              retry_after(wait))

    async def jwks(self, request: Request) -> Response:
        return json_response(await self._signing.jwks(), headers={"Cache-Control": "public, max-age=60"})

    async def metadata(self, request: Request) -> Response:
        issuer = self._settings.auth.issuer
        base = issuer.rstrip("/") if issuer.startswith(("https://", "http://")) else str(request.base_url).rstrip("/")
        return json_response({
            "issuer": issuer,
            "token_endpoint": base + TOKEN_PATH,
            "jwks_uri": base + JWKS_PATH,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": sorted(SCOPES),
            "response_types_supported": [],
            "access_token_signing_alg_values_supported": ["ES256"],
        }, headers={"Cache-Control": "public, max-age=300"})

    def routes(self) -> list[Route]:
        return [
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
        ]


async def _bounded_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise oauth_error(413, "invalid_request", f"the form is larger than {_MAX_FORM_BYTES} bytes")
    return body
