"""The system page (platform admins): every service's readiness, consumer lag per group and
partition, throughput, and the size of the database and of the embedded bus."""

from __future__ import annotations

from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gamemetrics.ports.bus import Bus
from gamemetrics.services.dashboard.live import LiveFeed
from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.sessions import Session


class SystemPages:
    """What a platform admin watches: health, lag, throughput, sizes."""

    def __init__(self, pages: Pages, api_url: str, bus: Bus, pool: AsyncConnectionPool, live: LiveFeed) -> None:
        self._pages = pages
        self._api_url = api_url
        self._bus = bus
        self._pool = pool
        self._live = live

    async def show(self, request: Request, session: Session) -> Response:
        if session.role != "platform_admin":
            raise Page(403, "the system page is for platform admins")
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                answer = await http.get(f"{self._api_url}/readyz")
                ready: dict[str, Any] = answer.json()
                ready_ok = answer.status_code == 200
            except (httpx.HTTPError, ValueError) as exc:
                ready, ready_ok = {"error": str(exc)}, False
        lags = sorted(await self._bus.lag(), key=lambda p: (p.group_id, p.topic, p.partition))
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT pg_database_size(current_database()),"
                " coalesce(pg_total_relation_size(to_regclass('bus_log')), 0)")
            row = await cur.fetchone()
        database_bytes, bus_bytes = (int(row[0]), int(row[1])) if row else (0, 0)
        events, games = self._live.throughput()
        return self._pages.render(
            "system.html", session=session, game=None, ready=ready, ready_ok=ready_ok, lags=lags,
            total_lag=sum(p.lag for p in lags), events=events, games=games,
            database_mb=database_bytes / 2**20, bus_mb=bus_bytes / 2**20)

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{PREFIX}/system", self._pages.signed_in(self.show), methods=["GET"])]
