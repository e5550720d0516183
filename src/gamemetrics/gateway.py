"""The HTTP host: the services of one process under one base URL (what `gamemetrics up` serves).

Each service owns the path prefixes the registry declares for it; a request goes to the service
owning its path, paths nobody owns are answered 404. The host itself serves liveness, readiness
(every service's checks) and metrics once for all of them.

A request under an owned prefix goes straight to its service's app, in front of the host's own
Starlette app rather than as one of its routes: the host's middleware and route matching would
otherwise run before the service's own on every request, a third again of what a cached
analytics answer costs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gamemetrics import registry
from gamemetrics.observability import tracing
from gamemetrics.readiness import Peers, readiness
from gamemetrics.registry import ServiceSpec
from gamemetrics.runtime.services import running
from gamemetrics.service import Service
from gamemetrics.settings import Settings
from gamemetrics.web.metrics import metrics_route
from gamemetrics.web.refusals import exception_handlers


class Owned:
    """Every path under `prefix`, handed to the app of the service that owns it."""

    def __init__(self, prefix: str, app: Starlette) -> None:
        self.prefix = prefix
        self.app = app

    @property
    def routes(self) -> list[BaseRoute]:
        """The owning service's routes (so route listings can look inside)."""
        return self.app.router.routes


class Host:
    """The process's ASGI app: a request under an owned prefix goes to its service (the deepest
    claim first); lifespan, the platform's own paths and paths nobody owns go to `platform`."""

    def __init__(self, platform: Starlette) -> None:
        self.platform = platform
        self.owned: list[Owned] = []

    @property
    def routes(self) -> list[BaseRoute | Owned]:
        """The platform's routes, then each owned prefix's."""
        return [*self.platform.router.routes, *self.owned]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            path = scope["path"]
            for route in self.owned:
                if registry.owns(route.prefix, path):
                    await route.app(scope, receive, send)
                    return
        await self.platform(scope, receive, send)


def service_app(service: Service, name: str) -> Starlette:
    """Service `name`'s routes behind its own middleware and exception handlers, and a span per
    request when tracing is on."""
    spans = [Middleware(tracing.RequestSpans, service=name)] if tracing.enabled() else []
    return Starlette(routes=list(service.routes), middleware=[*spans, *service.middleware],
                     exception_handlers=dict(service.exception_handlers))


def platform_routes(services: Mapping[str, Service], peers: Peers | None = None) -> list[Route]:
    """`/healthz` (alive), `/readyz` (each service's checks, the peers' too), the original `/health/*`
    paths, `/metrics`, and `/` to the dashboard when this host serves it."""
    checks = {name: service.checks for name, service in services.items()}

    async def alive(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def ready(request: Request) -> Response:
        ok, body = await readiness(checks, peers)
        return Response(msgspec.json.encode(body), status_code=200 if ok else 503, media_type="application/json")

    async def home(request: Request) -> Response:
        return RedirectResponse("/dashboard/", 307)

    home_route = [Route("/", home, methods=["GET"])] if "dashboard" in services else []
    return [
        *home_route,
        Route("/healthz", alive, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/health/live", alive, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        metrics_route(),
    ]


def combined_app(settings: Settings, url: str, names: Sequence[str], *,
                 on_failure: Callable[[], None] | None = None, peers: Peers | None = None,
                 on_started: Callable[[], None] | None = None) -> Host:
    """One ASGI app serving the services `names` (HTTP services, or one worker service for its probes).

    The services are built in the app's lifespan, on the server's own event loop, and their
    workers run beside the server until it stops; `on_failure` is called if one of them stops.
    `/readyz` includes the checks the `peers` report; `on_started` is called once they are built.
    """
    specs = _specs(names)
    conflicts = registry.claim_conflicts(specs)
    if conflicts:
        raise ValueError(f"paths claimed twice: {'; '.join(conflicts)}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(specs, settings, url, on_failure=on_failure) as services:
            app.router.routes.extend(platform_routes(services, peers))
            host.owned = owned_routes(specs, services)
            if on_started is not None:
                on_started()
            yield
            host.owned = []

    host = Host(Starlette(lifespan=lifespan, exception_handlers=dict(exception_handlers())))
    return host


def _specs(names: Sequence[str]) -> list[ServiceSpec]:
    specs = [registry.service(name) for name in names]
    workers = [spec.name for spec in specs if not spec.serves_http]
    if not specs or (workers and len(specs) > 1):
        raise ValueError(f"one process serves HTTP services ({', '.join(registry.HTTP_NAMES)}) joined by commas,"
                         f" or one service alone; not {', '.join(names) or '(none)'}")
    return specs


def owned_routes(specs: Sequence[ServiceSpec], services: Mapping[str, Service]) -> list[Owned]:
    """A route per owned prefix; refuses to start when a service serves a path it did not declare."""
    owned: list[Owned] = []
    for spec in specs:
        service = services[spec.name]
        stray = registry.stray_routes(spec, service.routes)
        if stray:
            raise RuntimeError(f"{spec.name} serves {', '.join(stray)} outside the paths the registry declares for"
                               f" it ({', '.join(spec.paths) or 'none'}); add the prefix to its registry entry")
        shadowed = registry.shadowed_routes(spec, service.routes, specs)
        if shadowed:
            raise RuntimeError(f"{spec.name} serves {', '.join(shadowed)}, paths another service's deeper claim"
                               f" serves; move the route or the claim")
        app = service_app(service, spec.name)
        owned += [Owned(prefix, app) for prefix in spec.paths]
    # The deepest claim first: a carve-out inside another service's prefix takes its paths.
    return sorted(owned, key=lambda route: -registry.specificity(route.prefix))
