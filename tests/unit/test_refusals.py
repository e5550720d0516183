"""The exception handlers every app registers: each error a route raises → its status, body and headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import HTTPExceptionHandler
from starlette.websockets import WebSocket

from gamemetrics.auth.tokens import InsufficientScope, InvalidToken
from gamemetrics.ports.bus import BusError
from gamemetrics.services.analytics.app import refusals as analytics_refusals
from gamemetrics.services.ingest.app import refusals as ingest_refusals
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.services.users.http import refusals as users_refusals
from gamemetrics.web.challenge import bearer_challenge, quoted
from gamemetrics.web.errors import ApiError

RAISED: dict[str, Exception] = {
    "refused": ApiError(409, "taken already"),
    "oauth": ApiError(400, "grant_type is required", code="invalid_request", headers={"Cache-Control": "no-store"}),
    "token": InvalidToken('bad "sig" \\ here'),
    "scope": InsufficientScope("this token lacks the scope 'admin'", "admin"),
    "database": psycopg.OperationalError("connection refused"),
    "pool": PoolTimeout("couldn't get a connection after 10.00 sec"),
    "bus": BusError("the log cannot take the batch"),
    "query": psycopg.errors.UndefinedTable("relation does not exist"),
    "ingest": IngestError(429, "write key is over its event rate; retry later", retry_after=2.4),
}
# RFC 6750 §3: `Bearer` then comma-separated auth-params whose quoted values use %x20-21 / %x23-5B / %x5D-7E.
CHALLENGE = re.compile(r'Bearer [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*"(, [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*")*')


def client(handlers: Mapping[type[Exception], HTTPExceptionHandler]) -> TestClient:
    async def fail(request: Request) -> Response:
        raise RAISED[request.path_params["name"]]

    app = Starlette(routes=[Route("/{name}", fail)], exception_handlers=handlers)
    return TestClient(app, raise_server_exceptions=False)


def test_users_refusals_keep_their_statuses_bodies_and_headers() -> None:
    http = client(users_refusals())
    refused = http.get("/refused")
    assert (refused.status_code, refused.json()) == (409, {"error": "taken already"})
    oauth = http.get("/oauth")
    assert (oauth.status_code, oauth.json()) == (400, {"error": "invalid_request",
                                                       "error_description": "grant_type is required"})
    assert oauth.headers["cache-control"] == "no-store"
    token = http.get("/token")
    assert (token.status_code, token.json()) == (401, {"error": 'invalid token: bad "sig" \\ here'})
    assert token.headers["www-authenticate"] == \
        'Bearer error="invalid_token", error_description="bad \'sig\' / here"'
    scope = http.get("/scope")
    assert (scope.status_code, scope.json()) == (403, {"error": "this token lacks the scope 'admin'"})
    assert scope.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
    for name in ("database", "pool", "bus"):
        away = http.get(f"/{name}")
        assert away.status_code == 503, name
        assert away.json() == {"error": "storage is unavailable; nothing was changed, retry later"}, name
        assert away.headers["retry-after"] == "1", name
    # A bad query is a bug, not an outage: it is not hidden behind a 503.
    assert http.get("/query").status_code == 500


def refused_429() -> float:
    return REGISTRY.get_sample_value("gamemetrics_ingest_requests_refused_total", {"status": "429"}) or 0.0


def test_ingest_refusals_count_and_treat_every_database_error_as_nothing_accepted() -> None:
    http = client(ingest_refusals())
    before = refused_429()
    limited = http.get("/ingest")
    assert (limited.status_code, limited.json()) == (429, {"error": "write key is over its event rate; retry later"})
    assert limited.headers["retry-after"] == "2"
    assert refused_429() == before + 1
    for name in ("database", "pool", "bus", "query"):
        away = http.get(f"/{name}")
        assert away.status_code == 503, name
        assert away.json() == {"error": "storage is unavailable; nothing was accepted, retry later"}, name
        assert away.headers["retry-after"] == "1", name


def test_analytics_refusals_are_graphql_errors_with_codes() -> None:
    http = client(analytics_refusals())
    token = http.get("/token")
    assert token.status_code == 401
    assert token.json() == {"data": None, "errors": [{"message": 'bad "sig" \\ here',
                                                      "extensions": {"code": "UNAUTHENTICATED"}}]}
    assert token.headers["www-authenticate"] == \
        'Bearer error="invalid_token", error_description="bad \'sig\' / here"'
    scope = http.get("/scope")
    assert scope.status_code == 403
    assert scope.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert scope.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
    away = http.get("/database")
    assert (away.status_code, away.headers["retry-after"]) == (503, "1")
    assert away.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize(("text", "expected"), [
    ("plain words", '"plain words"'),
    ('a "quote"', "\"a 'quote'\""),
    ("a \\ backslash", '"a / backslash"'),
    ("a line\r\nSet-Cookie: x=1", '"a line??Set-Cookie: x=1"'),
    ("é", '"?"'),
])
def test_quoted_values_stay_within_rfc_6750(text: str, expected: str) -> None:
    assert quoted(text) == expected


@given(st.text(max_size=300), st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=40))
def test_every_challenge_is_one_valid_header_value(description: str, scope: str) -> None:
    challenge = bearer_challenge("invalid_token", description=description, scope=scope)
    assert CHALLENGE.fullmatch(challenge), challenge
    sent = re.search(r'error_description="([^"]*)"', challenge)
    assert sent is not None and len(sent.group(1)) == min(len(description), 200)  # a long one is cut


def test_a_websocket_closes_as_before_instead_of_getting_an_http_answer() -> None:
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        raise psycopg.OperationalError("connection refused")

    app = Starlette(routes=[WebSocketRoute("/ws", socket)], exception_handlers=users_refusals())
    with pytest.raises(psycopg.OperationalError), TestClient(app).websocket_connect("/ws") as ws:
        ws.receive_text()


def test_paths_nobody_serves_and_methods_a_route_does_not_take_are_answered_in_words() -> None:
    async def ok(request: Request) -> Response:
        return Response("ok")

    def app(handlers: Mapping[type[Exception], HTTPExceptionHandler]) -> TestClient:
        return TestClient(Starlette(routes=[Route("/v1/things", ok, methods=["POST"])], exception_handlers=handlers))

    users = app(users_refusals())
    missing = users.get("/v1/nothing")
    assert (missing.status_code, missing.json()) == (404, {"error": "nothing is served at /v1/nothing"})
    wrong = users.get("/v1/things")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "GET is not accepted at /v1/things; use POST"})
    assert wrong.headers["allow"] == "POST"
    graphql = app(analytics_refusals()).get("/graphqx")
    assert (graphql.status_code, graphql.json()) == (404, {"data": None, "errors": [
        {"message": "nothing is served at /graphqx", "extensions": {"code": "NOT_FOUND"}}]})
