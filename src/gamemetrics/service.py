"""What a service is given (its adapters) and what its builder hands back (a `Service`).

Services import these types, never the runtime that makes the adapters: the wiring points inward.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gamemetrics.web.health import Probe

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool
    from starlette.middleware import Middleware
    from starlette.routing import BaseRoute
    from starlette.types import ExceptionHandler

    from gamemetrics.gdpr.erasers import PlayerEraser
    from gamemetrics.gdpr.exports import PlayerExport
    from gamemetrics.ports.bus import Bus
    from gamemetrics.ports.cache import Caches
    from gamemetrics.ports.mail import Mail
    from gamemetrics.ports.objects import Objects
    from gamemetrics.ports.vectors import Vectors
    from gamemetrics.settings import Settings

Worker = Callable[[], Coroutine[Any, Any, None]]
"""A background loop: runs as a task until cancelled; a return or a raise means it has stopped working."""


@dataclass(frozen=True, slots=True)
class Adapters:
    """The infrastructure one service talks to, made by the runtime from the settings.

    The Vectors and Mail ports join these fields with the first service that uses them; their
    adapters are made by `adapters.qdrant.make_vectors` and `adapters.mail.make_mail`.
    """

    url: str
    pool: AsyncConnectionPool
    bus: Bus
    caches: Caches
    objects: Objects | None = None
    """Object storage (archives, exports): a directory under the data dir, or an S3 bucket."""
    player_data_stores: tuple[str, ...] = ()
    """Every store of the platform that holds player data (the registry's): an erasure waits for each."""
    player_exports: tuple[tuple[str, PlayerExport], ...] = ()
    """Each service's part of a player's export, by service name (the registry's), for the users service."""
    mail: Mail | None = None
    """The Mail port's provider (SMTP when configured, else the outbox table)."""
    mail_fallback: Mail | None = None
    """A second provider that takes over when `mail` keeps failing, if configured."""
    open_vectors: Callable[[], Vectors] | None = None
    """Opens the Vectors port (the caller closes it); lazy, because Qdrant's local mode lets one
    process at a time hold its directory, so only the service that searches vectors opens it."""


@dataclass(frozen=True, slots=True)
class Service:
    """A built service: its HTTP routes (with their middleware and exception handlers), its
    background workers, its readiness probes and its erasers of player data."""

    routes: Sequence[BaseRoute] = ()
    middleware: Sequence[Middleware] = ()
    exception_handlers: Mapping[Any, ExceptionHandler] = field(default_factory=dict)
    workers: Mapping[str, Worker] = field(default_factory=dict)
    checks: Mapping[str, Probe] = field(default_factory=dict)
    erasers: Sequence[PlayerEraser] = ()
    """How it erases a player from the stores its registry entry names; the runtime runs each in a
    consumer group of `gdpr.requests` of its own."""


Builder = Callable[["Adapters", "Settings"], AbstractAsyncContextManager[Service]]
"""Builds a service from its adapters; the context it returns owns the service's own resources."""

