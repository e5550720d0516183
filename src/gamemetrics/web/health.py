"""Readiness probes: each names a dependency and raises when it cannot be reached (`/readyz` runs them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

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

