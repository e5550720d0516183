"""Builds the dashboard service: its pages, its sessions, and the live feed's one consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.processed import ProcessedEvent
from gamemetrics.ports.bus import PROCESSED_EVENTS
from gamemetrics.service import Adapters, Service
from gamemetrics.services.dashboard.dead_letters import DeadLetterStore
from gamemetrics.services.dashboard.insights import InsightPages
from gamemetrics.services.dashboard.live import LiveFeed
from gamemetrics.services.dashboard.manage import ManagePages
from gamemetrics.services.dashboard.operators import OperatorPages
from gamemetrics.services.dashboard.pages import Pages
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.quality import QualityPages
from gamemetrics.services.dashboard.sessions import Sessions
from gamemetrics.services.dashboard.settings_pages import SettingsPages
from gamemetrics.services.dashboard.system import SystemPages
from gamemetrics.settings import Settings
from gamemetrics.web.health import database_probe

STATIC = Path(__file__).parent / "static"


def api_url(settings: Settings) -> str:
    """The platform's base URL: the setting, else this host's own address and port."""
    if settings.dashboard.dashboard_api_url:
        return settings.dashboard.dashboard_api_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 (compared, not bound)
    return f"http://{host}:{settings.port}"


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The dashboard on `adapters`: pages under /dashboard, one consumer of the processed topic."""
    own = settings.dashboard
    live = LiveFeed(minutes=own.dashboard_live_minutes, tail=own.dashboard_tail_events)
    feed: ConsumerLoop[list[ProcessedEvent]] = ConsumerLoop(
        adapters.bus, own.dashboard_live_group, [PROCESSED_EVENTS],
        prepare=LiveFeed.decode, sink=live.take, batch_size=1000, poll_timeout=0.2)
    base = api_url(settings)
    api = PlatformApi(base)
    letters = DeadLetterStore(adapters.pool, adapters.bus.producer(), role=settings.analytics.db_role)
    secret = platform_secret(settings)
    pages = Pages(Sessions(adapters.caches.cache("dashboard.sessions"), secret), api, live,
                  lifetime_s=own.dashboard_session_minutes * 60, secure_cookie=own.dashboard_secure_cookie,
                  operator_check_s=own.dashboard_operator_check_seconds)
    try:
        yield Service(routes=[*pages.routes(str(STATIC)), *ManagePages(pages, api).routes(),
                              *InsightPages(pages, api, live).routes(),
                              *QualityPages(pages, api, letters).routes(),
                              *SettingsPages(pages, api, AuditLog(secret), adapters.pool).routes(),
                              *OperatorPages(pages, api).routes(),
                              *SystemPages(pages, base, adapters.bus, adapters.pool, live).routes()],
                      exception_handlers={404: pages.not_found},
                      workers={"live feed": feed.run},
                      checks={"database": database_probe(adapters.pool), "bus": adapters.bus.ping})
    finally:
        await api.close()
