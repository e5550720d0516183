"""`/healthz` (alive) and `/readyz` (dependencies reachable), plus the original `/health/*` paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Named readiness probes; each raises when its dependency cannot be reached."""

    probes: dict[str, Probe]

    async def check(self) -> dict[str, str]:
        results: dict[str, str] = {}
        for name, probe in self.probes.items():
            try:
                await probe()
                results[name] = "ok"
            except Exception as exc:  # a probe's failure is the answer, not an error
                results[name] = f"unavailable: {exc}"
        return results


def database_probe(pool: AsyncConnectionPool, *, timeout_s: float = 2.0) -> Probe:
    """A probe that runs `SELECT 1` on a connection of `pool`, waiting at most `timeout_s` for one."""
    async def database() -> None:
        async with pool.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")

    return database


def health_routes(health: HealthCheck) -> list[Route]:
    """The liveness and readiness routes of an app."""
    async def alive(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def ready(request: Request) -> Response:
        checks = await health.check()
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return Response(msgspec.json.encode(body), status_code=200 if ok else 503, media_type="application/json")

    return [
        Route("/healthz", alive, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/health/live", alive, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]
