"""Several HTTP services in one process under one base URL (what `gamemetrics up` serves).

Each service owns a few path prefixes; requests go to the service owning their path, everything
else to the first service named. Every service's lifespan runs, so each opens its own resources
as it does when it runs alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from gamemetrics.settings import Settings

Builder = Callable[[Settings, str], Starlette]


def _ingest(settings: Settings, url: str) -> Starlette:
    from gamemetrics.services.ingest.main import create_app

    return create_app(settings, url)


def _analytics(settings: Settings, url: str) -> Starlette:
    from gamemetrics.services.analytics.main import create_app

    return create_app(settings, url)


def _users(settings: Settings, url: str) -> Starlette:
    from gamemetrics.services.users.main import create_app

    return create_app(settings, url)


USERS_PATHS = ("/oauth", "/.well-known", "/v1/admin", "/v1/games", "/v1/erasures", "/v1/operators")

HTTP_SERVICES: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "ingest": (_ingest, ()),
    "analytics": (_analytics, ("/graphql",)),
    "users": (_users, USERS_PATHS),
}


class PathRouter:
    """Sends each request or WebSocket to the app owning its path's prefix."""

    def __init__(self, default: Starlette, owned: Sequence[tuple[str, Starlette]]) -> None:
        self._default = default
        self._owned = owned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        for prefix, app in self._owned:
            if path == prefix or path.startswith(prefix + "/"):
                await app(scope, receive, send)
                return
        await self._default(scope, receive, send)


def combined_app(settings: Settings, url: str, services: Sequence[str]) -> Starlette:
    """One ASGI app serving `services` (HTTP services, the first one taking unclaimed paths)."""
    unknown = [s for s in services if s not in HTTP_SERVICES]
    if unknown or not services:
        raise ValueError(f"not HTTP services: {', '.join(unknown) or '(none)'}; choose from {', '.join(HTTP_SERVICES)}")
    apps = {name: HTTP_SERVICES[name][0](settings, url) for name in services}
    if len(apps) == 1:
        return apps[services[0]]
    owned = [(prefix, apps[name]) for name in services[1:] for prefix in HTTP_SERVICES[name][1]]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for sub in apps.values():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            yield

    return Starlette(lifespan=lifespan, routes=[Mount("", app=PathRouter(apps[services[0]], owned))])
