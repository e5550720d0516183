"""The platform's services, declared once.

The CLI's `serve` choices, the combined HTTP app, the children of `gamemetrics up` and `/readyz`
all come from `SERVICES`. Adding a service is one folder under `services/` and one entry here.
Builders are named by import path and loaded only when a service is built, so the CLI starts
without importing every service's dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gamemetrics.service import Builder
    from gamemetrics.settings import Settings

Kind = Literal["http", "worker", "both"]

PLATFORM_PATHS = ("/healthz", "/readyz", "/health", "/metrics")
"""Paths the host serves for every service it runs: liveness, readiness and Prometheus metrics."""


def _one(settings: Settings) -> int:
    return 1


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: what it is, how it is built, the paths it owns and where it keeps player data."""

    name: str
    kind: Kind
    builder: str
    """`module:function` of its `Builder`, imported when the service is built."""
    summary: str
    paths: tuple[str, ...] = ()
    """Path prefixes it owns; every route it serves lies under one of them."""
    gdpr_stores: tuple[str, ...] = ()
    """Stores holding player data that its erasers clear and confirm (`Service.erasers`)."""
    pool_size: Callable[[Settings], int] = lambda settings: 4
    replicas: Callable[[Settings], int] = _one
    """Processes `gamemetrics up` runs of a worker service."""

    @property
    def serves_http(self) -> bool:
        return self.kind in ("http", "both")

    def load(self) -> Builder:
        """Import the builder."""
        module, _, function = self.builder.partition(":")
        return cast("Builder", getattr(importlib.import_module(module), function))


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "ingest", "http", "gamemetrics.services.ingest.main:build",
        "receives event batches (native, Segment and the original API) and appends them to the bus",
        paths=("/v1/events", "/v1/import", "/v1/batch", "/v1/track", "/v1/identify", "/api/v1/events"),
        pool_size=lambda settings: 8,
    ),
    ServiceSpec(
        "processor", "worker", "gamemetrics.services.processor.main:build",
        "validates, enriches and stores events and rollups; dead-letters bad ones",
        replicas=lambda settings: settings.processor_processes,
    ),
    ServiceSpec(
        "analytics", "http", "gamemetrics.services.analytics.main:build",
        "the GraphQL API over the stored data",
        paths=("/graphql",),
        pool_size=lambda settings: settings.analytics_pool_size,
    ),
    ServiceSpec(
        "users", "both", "gamemetrics.services.users.main:build",
        "tenants, games, keys, OAuth2 clients and tokens, operators, players, GDPR erasure and export",
        paths=("/oauth", "/.well-known", "/v1/admin", "/v1/games", "/v1/erasures", "/v1/operators"),
        # Its eraser clears, in one transaction, what the spine wrote (the processor's events,
        # rollups and dead letters, its own profiles), then the player's messages on the bus.
        gdpr_stores=("events", "rollups", "profile", "dead_letters", "bus"),
        pool_size=lambda settings: settings.users_pool_size,
    ),
    ServiceSpec(
        "retention", "both", "gamemetrics.services.retention.main:build",
        "retention policies; archives cold event days as verified Parquet; erases players from archives",
        paths=("/v1/admin/retention",),
        gdpr_stores=("archive",),
        pool_size=lambda settings: 2,
    ),
)

NAMES = tuple(spec.name for spec in SERVICES)
HTTP_NAMES = tuple(spec.name for spec in SERVICES if spec.serves_http)


def service(name: str) -> ServiceSpec:
    """The service called `name`; KeyError names the choices."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r}; choose one of {', '.join(NAMES)}")


def gdpr_stores() -> tuple[str, ...]:
    """Every store that holds player data, in registry order."""
    return tuple(store for spec in SERVICES for store in spec.gdpr_stores)


def owns(prefix: str, path: str) -> bool:
    """Whether `path` lies under `prefix` (the prefix itself, or below it at a `/`)."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def claim_conflicts(specs: Iterable[ServiceSpec] = SERVICES) -> list[str]:
    """Prefixes claimed by two services, or overlapping a platform path: empty when none.

    A service may claim a path below another's prefix (`/v1/admin/retention` below `/v1/admin`):
    the longer prefix wins, in the host as in an Ingress."""
    platform = [("the platform", path) for path in PLATFORM_PATHS]
    claims = [(spec.name, prefix) for spec in specs for prefix in spec.paths]
    return [
        f"{prefix!r} of {owner} overlaps {other_prefix!r} of {other}"
        for owner, prefix in platform for other, other_prefix in claims
        if owns(prefix, other_prefix) or owns(other_prefix, prefix)
    ] + [
        f"{prefix!r} of {owner} is claimed again by {other}"
        for i, (owner, prefix) in enumerate(claims)
        for other, other_prefix in claims[i + 1:]
        if prefix.rstrip("/") == other_prefix.rstrip("/")
    ]


def stray_routes(spec: ServiceSpec, routes: Sequence[BaseRoute]) -> list[str]:
    """Paths of `routes` outside `spec`'s declared prefixes: empty when the declaration is true."""
    paths = [str(getattr(route, "path", "")) for route in routes]
    return [path for path in paths if not any(owns(prefix, path) for prefix in spec.paths)]
