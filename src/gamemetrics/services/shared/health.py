"""`/healthz` (alive) and `/readyz` (database and bus reachable), plus the original `/health/*` paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
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


def health_routes(health: HealthCheck) -> list[Route]:
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
