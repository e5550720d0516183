"""Dashboard sessions on the in-process cache: found by their cookie, sealed, bounded in time,
ended by logout; and the dashboard's settings read their flat variables."""

from __future__ import annotations

import time

import pytest

from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.services.dashboard.main import api_url
from gamemetrics.services.dashboard.sessions import Session, Sessions, csrf_ok
from gamemetrics.settings import Settings

SECRET = b"s" * 48


async def _start(sessions: Sessions, lifetime_s: float = 60.0, expires_in: float = 3600.0) -> tuple[str, Session]:
    return await sessions.start("token-1", expires_in, operator_id="op", email="a@b.test", role="analyst",
                                tenant_id="t", lifetime_s=lifetime_s)


async def test_a_session_is_found_by_its_cookie_and_ended_by_logout() -> None:
    cache = MemoryCache(1 << 20)
    sessions = Sessions(cache, SECRET)
    sid, session = await _start(sessions)
    assert await sessions.find(sid) == session and not session.manages
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, "forged") and not csrf_ok(session, None)
    assert await sessions.find(sid + "x") is None and await sessions.find(None) is None
    assert await Sessions(cache, b"t" * 48).find(sid) is None, "sealed with a key of the platform secret"
    await sessions.end(sid)
    assert await sessions.find(sid) is None


async def test_a_session_ends_with_its_lifetime_or_its_token() -> None:
    sessions = Sessions(MemoryCache(1 << 20), SECRET)
    _, short = await _start(sessions, lifetime_s=60.0, expires_in=30.0)
    assert short.expires_at <= time.time() + 25.0 + 1, "never outlives the token it holds"
    sid, _ = await _start(sessions, lifetime_s=1.0)
    time.sleep(1.1)
    assert await sessions.find(sid) is None


async def test_a_session_ended_by_the_platform_leaves_its_reason_until_it_would_have_expired() -> None:
    cache = MemoryCache(1 << 20)
    sessions = Sessions(cache, SECRET)
    sid, session = await _start(sessions, lifetime_s=1.0)
    other, _ = await _start(sessions)
    assert await sessions.ended(sid) is None, "a live session was not ended"
    await sessions.end_for(sid, session, "disabled")
    assert await sessions.find(sid) is None and await sessions.ended(sid) == "disabled"
    assert await sessions.find(other) is not None, "only that session ends"
    assert await Sessions(cache, b"t" * 48).ended(sid) is None, "the note is sealed too"
    assert await sessions.ended(None) is None and await sessions.ended("x" * 101) is None
    time.sleep(1.1)
    assert await sessions.ended(sid) is None, "forgotten when the session would have expired"


def test_dashboard_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEMETRICS_DASHBOARD_LIVE_GROUP", "dashboard.live.pod-7")
    monkeypatch.setenv("GAMEMETRICS_DASHBOARD_SESSION_MINUTES", "15")
    monkeypatch.setenv("GAMEMETRICS_PORT", "9100")
    monkeypatch.delenv("GAMEMETRICS_DASHBOARD_API_URL", raising=False)
    settings = Settings()
    assert settings.dashboard.dashboard_live_group == "dashboard.live.pod-7"
    assert settings.dashboard.dashboard_session_minutes == 15.0
    assert api_url(settings) == "http://127.0.0.1:9100"
    monkeypatch.setenv("GAMEMETRICS_DASHBOARD_API_URL", "https://metrics.example/")
    assert api_url(Settings()) == "https://metrics.example"
