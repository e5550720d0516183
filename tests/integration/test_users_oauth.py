"""The token endpoint (RFC 6749 §4.4 and its error format), the JWKS and metadata, key rotation,
and the refusals every protected route gives to tokens it must not trust."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gamemetrics.auth.keys import public_jwk
from gamemetrics.settings import Settings
from tests.identity import platform_signing_key
from tests.integration.users_fixtures import Users, add_tenant, basic, users_service

FORM = {"grant_type": "client_credentials"}


def test_token_by_basic_and_by_form_verifies_against_the_published_jwks(users: Users) -> None:
    by_basic = users.http.post("/oauth/token", data=FORM, headers=basic(users.client_id, users.client_secret))
    by_form = users.http.post("/oauth/token", data={**FORM, "client_id": users.client_id,
                                                      "client_secret": users.client_secret, "scope": "players:read"})
    assert by_basic.status_code == by_form.status_code == 200, (by_basic.text, by_form.text)
    assert by_basic.headers["cache-control"] == "no-store"
    assert by_form.json()["scope"] == "players:read" and by_form.json()["token_type"] == "Bearer"
    jwks = users.http.get("/.well-known/jwks.json").json()
    meta = users.http.get("/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"].endswith("/oauth/token") and meta["jwks_uri"].endswith("/.well-known/jwks.json")
    assert "client_credentials" in meta["grant_types_supported"]
    token = by_basic.json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=users.settings.auth.audience,
                        issuer=users.settings.auth.issuer)
    assert claims["sub"] == claims["client_id"] == users.client_id
    assert claims["tenant_id"] == str(users.tenant_id)
    assert set(claims["scope"].split()) >= {"admin", "players:read", "gdpr:erase"}
    assert {"iat", "exp", "jti", "nbf"} <= set(claims)


@pytest.mark.parametrize(("form", "headers", "status", "error"), [
    ({"grant_type": "password"}, "basic", 400, "unsupported_grant_type"),
    ({}, "basic", 400, "invalid_request"),
    (FORM, None, 401, "invalid_client"),
    (FORM, "wrong", 401, "invalid_client"),
    ({**FORM, "scope": "analytics:read telepathy"}, "basic", 400, "invalid_scope"),
    ({**FORM, "client_id": "x", "client_secret": "y"}, "basic", 400, "invalid_request"),
])
def test_token_errors_follow_rfc_6749(users: Users, form: dict[str, str], headers: str | None, status: int,
                                      error: str) -> None:
    sent = {"basic": basic(users.client_id, users.client_secret),
            "wrong": basic(users.client_id, "not-the-secret"), None: {}}[headers]
    response = users.http.post("/oauth/token", data=form, headers=sent)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and response.json()["error_description"]
    if status == 401 and headers:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_a_revoked_client_gets_no_more_tokens(users: Users) -> None:
    created = users.http.post("/v1/admin/clients", json={"name": "ci", "scopes": ["players:read"]},
                              headers=users.auth("admin"))
    assert created.status_code == 201, created.text
    cid, secret = created.json()["client_id"], created.json()["client_secret"]
    assert users.http.post("/oauth/token", data=FORM, auth=(cid, secret)).status_code == 200
    asked_more = users.http.post("/oauth/token", data={**FORM, "scope": "admin"}, auth=(cid, secret))
    assert asked_more.json()["error"] == "invalid_scope"
    assert users.http.delete(f"/v1/admin/clients/{cid}", headers=users.auth("admin")).status_code == 200
    refused = users.http.post("/oauth/token", data=FORM, auth=(cid, secret))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_token_endpoint_is_rate_limited_per_client_and_per_address(settings: Settings, database_url: str) -> None:
    tight = settings.updated(users={"token_rate_per_client_per_second": 0.01, "token_rate_client_burst": 3,
                                    "token_rate_per_address_per_second": 0.01, "token_rate_address_burst": 6})
    service = users_service(tight, database_url)
    users = next(service)
    _, _, other_id, other_secret = add_tenant(database_url)
    try:
        statuses = [users.http.post("/oauth/token", data=FORM, auth=(users.client_id, users.client_secret))
                    .status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the client's burst is 3
        limited = users.http.post("/oauth/token", data=FORM, auth=(users.client_id, users.client_secret))
        assert limited.json()["error"] == "slow_down" and int(limited.headers["retry-after"]) >= 1
        # Another client (a fresh bucket of 3) from the same address: only the address's 6th request passes.
        others = [users.http.post("/oauth/token", data=FORM, auth=(other_id, other_secret)).status_code
                  for _ in range(2)]
        assert others == [200, 429], "the address had sent 5 requests; its burst is 6"
    finally:
        next(service, None)


def _forged(users: Users, **claims: Any) -> str:
    kid, key = platform_signing_key(users.database_url, users.settings.data_dir)
    key = claims.pop("key", key)
    kid = claims.pop("kid", kid)
    now = int(time.time())
    body = {"iss": users.settings.auth.issuer, "aud": users.settings.auth.audience, "sub": "forger", "iat": now,
            "nbf": now, "exp": now + 60, "jti": str(uuid.uuid4()), "tenant_id": str(users.tenant_id),
            "scope": "players:read", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="ES256",
                      headers={"kid": kid, "typ": "at+jwt"})


def test_untrustworthy_tokens_are_refused(users: Users) -> None:
    users.token("players:read")  # the platform's first token makes its signing key
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    good = _forged(users)
    head, body, signature = good.split(".")
    tampered_sig = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    unsigned = jwt.encode({"iss": users.settings.auth.issuer, "aud": users.settings.auth.audience, "sub": "x",
                           "iat": now, "exp": now + 60, "tenant_id": str(users.tenant_id), "scope": "players:read"},
                          None, algorithm="none")
    cases = {
        "expired": (_forged(users, exp=now - 120, iat=now - 300, nbf=now - 300), 401),
        "not yet valid": (_forged(users, nbf=now + 600), 401),
        "wrong audience": (_forged(users, aud="someone-else"), 401),
        "wrong issuer": (_forged(users, iss="https://elsewhere.example"), 401),
        "unknown kid": (_forged(users, key=stranger, kid=public_jwk(stranger.public_key())["kid"]), 401),
        "forged with a known kid": (_forged(users, key=stranger), 401),
        "alg none": (unsigned, 401),
        "tampered signature": (f"{head}.{body}.{tampered_sig}", 401),
        "tampered claims": (f"{head}.{_swap_scope(body)}.{signature}", 401),
        "wrong scope": (_forged(users, scope="analytics:read"), 403),
        "no token": (None, 401),
    }
    path = f"/v1/games/{users.game_id}/players"
    assert users.http.get(path, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for name, (token, status) in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = users.http.get(path, headers=headers)
        assert response.status_code == status, (name, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), name


def _swap_scope(body: str) -> str:
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["scope"] = "players:read admin"
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(users: Users) -> None:
    import asyncio

    from gamemetrics.adapters.postgres.pool import open_pool
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.services.users.main import signing_keys

    old = users.token("players:read")
    old_kid = jwt.get_unverified_header(old)["kid"]
    # The service's verifier reads the key set now, while it holds the old key only.
    assert users.http.get(f"/v1/games/{users.game_id}/players",
                          headers={"Authorization": f"Bearer {old}"}).status_code == 200

    async def rotate() -> str:
        pool = await open_pool(users.database_url, max_size=1)
        try:
            return await signing_keys(users.settings, pool, platform_secret(users.settings)).rotate()
        finally:
            await pool.close()

    new_kid = asyncio.run(rotate())
    assert new_kid != old_kid
    published = {k["kid"] for k in users.http.get("/.well-known/jwks.json").json()["keys"]}
    assert {old_kid, new_kid} <= published
    assert users.http.get(f"/v1/games/{users.game_id}/players",
                          headers={"Authorization": f"Bearer {old}"}).status_code == 200
    # A token of the new key: the verifier has only the old key cached and re-reads the set on an
    # unknown kid, at most once a second (so made-up kids cannot hammer the database).
    time.sleep(1.1)
    fresh = _forged(users)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    assert users.http.get(f"/v1/games/{users.game_id}/players",
                          headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
