"""The platform's services, declared once.

The CLI's `serve` choices, the combined HTTP app, the children of `gamemetrics up` and `/readyz`
all come from `SERVICES`. Adding a service is one folder under `services/` and one entry here.
Builders are named by import path and loaded only when a service is built, so the CLI starts
without importing every service's dependencies.
"""

from __future__ import annotations

import functools
import importlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from starlette.routing import BaseRoute

    from gamemetrics.gdpr.exports import PlayerExport
    from gamemetrics.service import Builder
    from gamemetrics.settings import Settings

Kind = Literal["http", "worker", "both"]

PLATFORM_PATHS = ("/healthz", "/readyz", "/health", "/metrics")
"""Paths the host serves for every service it runs: liveness, readiness and Prometheus metrics."""


def _one(settings: Settings) -> int:
    return 1


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A one-shot CLI command of a service that runs on a schedule (on Kubernetes, a CronJob)."""

    name: str
    args: tuple[str, ...]
    """The `gamemetrics` command line, e.g. ("retention", "run")."""
    schedule: str
    """When, in cron syntax, UTC; the chart's values may override it."""
    summary: str
    service_env: tuple[tuple[str, str], ...] = ()
    """Settings the service's own processes get where a scheduler runs this job: the in-process
    schedule the job replaces is turned off, so the two never both run it."""


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
    gdpr_export: str | None = None
    """`module:function` of its `PlayerExport`, which the users service's export of a player calls."""
    pool_size: Callable[[Settings], int] = lambda settings: 4
    replicas: Callable[[Settings], int] = _one
    """Processes `gamemetrics up` runs of a worker service."""
    scheduled: tuple[ScheduledJob, ...] = ()
    """Its commands that a scheduler runs beside its processes."""

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
        replicas=lambda settings: settings.processor.processes,
    ),
    ServiceSpec(
        "analytics", "http", "gamemetrics.services.analytics.main:build",
        "the GraphQL API over the stored data",
        paths=("/graphql",),
        pool_size=lambda settings: settings.analytics.pool_size,
    ),
    ServiceSpec(
        "users", "both", "gamemetrics.services.users.main:build",
        "tenants, games, keys, OAuth2 clients and tokens, operators, players, GDPR erasure and export",
        paths=("/oauth", "/.well-known", "/v1/admin", "/v1/games", "/v1/erasures", "/v1/operators"),
        # Its eraser clears, in one transaction, what the spine wrote (the processor's events,
        # rollups and dead letters, its own profiles), then the player's messages on the bus.
        gdpr_stores=("events", "rollups", "profile", "dead_letters", "bus"),
        pool_size=lambda settings: settings.users.pool_size,
    ),
    ServiceSpec(
        "dashboard", "http", "gamemetrics.services.dashboard.main:build",
        "the operators' web UI: overview, live panel, players, keys, dead letters; through the platform's APIs",
        paths=("/dashboard",),
        pool_size=lambda settings: 4,
    ),
    ServiceSpec(
        "notifier", "both", "gamemetrics.services.notifier.main:build",
        "templates, notifications by API, topic and rules; delivery with retries, fallback and a DLQ",
        # The game-scoped paths lie below the users service's /v1/games: the longer prefix owns them.
        paths=("/v1/notifications", "/v1/games/{game_id}/notification-templates",
               "/v1/games/{game_id}/notification-rules",
               "/v1/games/{game_id}/players/{player_id}/notification-preferences",
               "/v1/games/{game_id}/players/{player_id}/inbox",
               "/v1/games/{game_id}/players/{player_id}/devices",
               "/v1/games/{game_id}/players/{player_id}/notification-data"),
        gdpr_stores=("notifications",),
        gdpr_export="gamemetrics.services.notifier.export:player_notifications",
        pool_size=lambda settings: settings.notifier.notifier_pool_size,
    ),
    ServiceSpec(
        "recommender", "both", "gamemetrics.services.recommender.main:build",
        "items ranked for each player from trained vectors in Qdrant, with cold start and a cache",
        # Carved out of users' /v1/games: the deeper claims serve these paths.
        paths=("/v1/games/{game_id}/items", "/v1/games/{game_id}/players/{player_id}/recommendations",
               "/v1/games/{game_id}/recommendations"),
        gdpr_stores=("vectors",),
    ),
    ServiceSpec(
        "retention", "both", "gamemetrics.services.retention.main:build",
        "retention policies; archives cold event days as verified Parquet; erases players from archives",
        paths=("/v1/admin/retention",),
        gdpr_stores=("archive",),
        pool_size=lambda settings: 2,
        # Where the CronJob runs, it is the daily run, and the service's pods keep the API and the
        # archive's eraser.
        scheduled=(ScheduledJob("run", ("retention", "run"), "0 2 * * *",
                                "archives every event day past its game's online window; exits 1 if a day failed",
                                service_env=(("GAMEMETRICS_RETENTION_RUN_AT", "off"),)),),
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


class _LazyExport:
    """A service's `PlayerExport`, imported at its first call: every process makes its adapters,
    and only the users service exports."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._loaded: PlayerExport | None = None

    async def __call__(self, conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                       player_id: str) -> Mapping[str, Any]:
        if self._loaded is None:
            module, _, function = self._path.partition(":")
            self._loaded = cast("PlayerExport", getattr(importlib.import_module(module), function))
        return await self._loaded(conn, tenant_id, game_id, player_id)


def player_exports() -> tuple[tuple[str, PlayerExport], ...]:
    """Each service's part of a player's export, by service name."""
    return tuple((spec.name, _LazyExport(spec.gdpr_export)) for spec in SERVICES if spec.gdpr_export)


def gdpr_stores() -> tuple[str, ...]:
    """Every store that holds player data, in registry order."""
    return tuple(store for spec in SERVICES for store in spec.gdpr_stores)


def _is_parameter(segment: str) -> bool:
    return len(segment) > 2 and segment.startswith("{") and segment.endswith("}")


def owns(prefix: str, path: str) -> bool:
    """Whether `path` lies under `prefix` (the prefix itself, or below it at a `/`).

    A `{name}` segment of the prefix stands for any one segment, so a service can own the paths
    below a resource of another's (`/v1/games/{game_id}/items` inside `/v1/games`)."""
    if "{" not in prefix:
        return path == prefix or path.startswith(prefix.rstrip("/") + "/")
    return _segments(prefix).match(path) is not None


@functools.lru_cache(maxsize=1024)
def _segments(prefix: str) -> re.Pattern[str]:
    """A prefix with `{name}` segments as one expression, made once: the host asks it of every request.

    Each literal segment must be the path's segment at that place, each `{name}` any non-empty
    one; the path may go on below the last, after a `/`."""
    wanted = prefix.rstrip("/").split("/")
    return re.compile("/".join("[^/]+" if _is_parameter(w) else re.escape(w) for w in wanted) + "(?:/|$)")


def specificity(prefix: str) -> int:
    """How deep a prefix reaches: the deeper claim of two that both own a path serves it."""
    return prefix.rstrip("/").count("/")


def _same_claim(a: str, b: str) -> bool:
    return owns(a, b) and owns(b, a)


def claim_conflicts(specs: Iterable[ServiceSpec] = SERVICES) -> list[str]:
    """Prefixes claimed by two services (or overlapping a platform path): empty when none.

    A claim strictly inside another service's is a carve-out, served by the deeper claim
    (`/v1/admin/retention` inside `/v1/admin`, `/v1/games/{game_id}/items` inside `/v1/games`); the
    gateway refuses routes of the outer service that a carve-out would hide (`shadowed_routes`)."""
    platform = [("the platform", path) for path in PLATFORM_PATHS]
    claims = [(spec.name, prefix) for spec in specs for prefix in spec.paths]
    return [
        f"{prefix!r} of {owner} overlaps {other_prefix!r} of {other}"
        for owner, prefix in platform for other, other_prefix in claims
        if owns(prefix, other_prefix) or owns(other_prefix, prefix)
    ] + [
        f"{prefix!r} of {owner} overlaps {other_prefix!r} of {other}"
        for i, (owner, prefix) in enumerate(claims)
        for other, other_prefix in claims[i + 1:]
        if _same_claim(prefix, other_prefix)
    ]


def shadowed_routes(spec: ServiceSpec, routes: Sequence[BaseRoute], specs: Iterable[ServiceSpec]) -> list[str]:
    """Paths of `spec`'s `routes` that a deeper claim of another service would serve instead."""
    deeper = [(other.name, prefix) for other in specs if other.name != spec.name for prefix in other.paths]
    shadowed = []
    for route in routes:
        path = str(getattr(route, "path", ""))
        mine = max((specificity(p) for p in spec.paths if owns(p, path)), default=-1)
        shadowed += [f"{path} (under {prefix} of {name})" for name, prefix in deeper
                     if owns(prefix, path) and specificity(prefix) > mine]
    return shadowed


def stray_routes(spec: ServiceSpec, routes: Sequence[BaseRoute]) -> list[str]:
    """Paths of `routes` outside `spec`'s declared prefixes: empty when the declaration is true."""
    paths = [str(getattr(route, "path", "")) for route in routes]
    return [path for path in paths if not any(owns(prefix, path) for prefix in spec.paths)]
