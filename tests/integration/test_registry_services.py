"""Every registry service built on real adapters: its routes lie under the paths it declares, its
checks answer, and its workers run until cancelled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gamemetrics import registry
from gamemetrics.gateway import Host, owned_routes
from gamemetrics.runtime.services import running
from gamemetrics.service import Service
from gamemetrics.settings import Settings
from gamemetrics.web.health import HealthCheck
from gamemetrics.web.refusals import exception_handlers


@pytest.mark.parametrize("name", registry.NAMES)
async def test_a_service_serves_only_its_declared_paths_and_is_ready(
        name: str, settings: Settings, database_url: str) -> None:
    spec = registry.service(name)
    failures: list[str] = []
    async with running([spec], settings, database_url, on_failure=lambda: failures.append(name)) as services:
        service = services[name]
        assert bool(service.routes) == spec.serves_http
        assert registry.stray_routes(spec, service.routes) == []
        assert await HealthCheck(dict(service.checks)).check() == {check: "ok" for check in service.checks}
        assert "database" in service.checks
    assert failures == []


async def test_the_processor_consumes_and_trims_the_embedded_log(settings: Settings, database_url: str) -> None:
    async with running([registry.service("processor")], settings, database_url) as services:
        assert set(services["processor"].workers) == {"consume", "trim"}


async def test_retention_runs_daily_itself_unless_a_scheduler_runs_it(settings: Settings, database_url: str) -> None:
    async with running([registry.service("retention")], settings, database_url) as services:
        assert set(services["retention"].workers) == {"daily"}
    (job,) = registry.service("retention").scheduled
    scheduled = settings.model_copy(update={"retention": settings.retention.model_copy(
        update={"retention_run_at": dict(job.service_env)["GAMEMETRICS_RETENTION_RUN_AT"]})})
    async with running([registry.service("retention")], scheduled, database_url) as services:
        assert set(services["retention"].workers) == set()


def test_the_host_refuses_a_route_outside_the_declared_paths() -> None:
    async def endpoint(request: object) -> None:
        return None

    analytics = registry.service("analytics")
    stray = Service(routes=[Route("/graphql", endpoint), Route("/v1/reports", endpoint)])
    with pytest.raises(RuntimeError, match="analytics serves /v1/reports outside the paths"):
        owned_routes([analytics], {"analytics": stray})


def test_the_host_hands_each_path_to_its_deepest_claim_and_keeps_its_own_paths() -> None:
    def answering(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return PlainTextResponse(name)
        return endpoint

    users = Service(routes=[Route("/v1/admin/write-keys", answering("users")),
                            Route("/v1/games/{game_id}/players", answering("users"))])
    recommender = Service(routes=[Route("/v1/games/{game_id}/items", answering("recommender"))])
    retention = Service(routes=[Route("/v1/admin/retention/policies", answering("retention"))])
    specs = [registry.service(name) for name in ("users", "recommender", "retention")]
    host = Host(Starlette(routes=[Route("/healthz", answering("host"))], exception_handlers=dict(exception_handlers())))
    host.owned = owned_routes(specs, {"users": users, "recommender": recommender, "retention": retention})
    with TestClient(host) as http:
        assert http.get("/v1/admin/write-keys").text == "users"
        assert http.get("/v1/admin/retention/policies").text == "retention"
        assert http.get("/v1/games/g1/items").text == "recommender"
        assert http.get("/v1/games/g1/players").text == "users"
        assert http.get("/healthz").text == "host"
        nobody = http.get("/v2/anything")
        assert (nobody.status_code, nobody.json()) == (404, {"error": "nothing is served at /v2/anything"})
