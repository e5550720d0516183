"""Every registry service built on real adapters: its routes lie under the paths it declares, its
checks answer, and its workers run until cancelled."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from gamemetrics import registry
from gamemetrics.gateway import owned_routes
from gamemetrics.runtime.services import running
from gamemetrics.service import Service
from gamemetrics.settings import Settings
from gamemetrics.web.health import HealthCheck


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


def test_the_host_refuses_a_route_outside_the_declared_paths() -> None:
    async def endpoint(request: object) -> None:
        return None

    analytics = registry.service("analytics")
    stray = Service(routes=[Route("/graphql", endpoint), Route("/v1/reports", endpoint)])
    with pytest.raises(RuntimeError, match="analytics serves /v1/reports outside the paths"):
        owned_routes([analytics], {"analytics": stray})
