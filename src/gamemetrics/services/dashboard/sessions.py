"""Dashboard sessions: an opaque id in an HttpOnly, SameSite cookie; the rest kept on the server.

A session is kept in the platform's cache (shared by every process when Redis is configured),
under a hash of its id and sealed with a key of its own derived from the platform secret, so
neither a cache dump nor a cookie alone yields an operator's token. Each session has its CSRF
token, which every state-changing form sends back. A session the platform ended (its operator was
disabled, or given another role) leaves a sealed note of why under its name until it would have
expired, so every open page of it learns the reason on its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TypeVar

import msgspec
from cryptography.exceptions import InvalidTag

from gamemetrics.auth.secret import derive, seal, unseal
from gamemetrics.ports.cache import Cache

T = TypeVar("T")

COOKIE = "gm_dashboard"
SESSIONS = b"gamemetrics/dashboard-sessions/v1"


class Session(msgspec.Struct, frozen=True):
    """A logged-in operator."""

    token: str
    operator_id: str
    email: str
    role: str
    tenant_id: str
    csrf: str
    expires_at: float

    @property
    def manages(self) -> bool:
        """Whether the role may change the tenant's settings (games, keys, clients, erasures)."""
        return self.role in ("tenant_admin", "platform_admin")


class Ended(msgspec.Struct, frozen=True):
    """Why the platform ended a session before its time."""

    ended: str


class Sessions:
    """Sessions in `cache`, each for at most its own lifetime."""

    def __init__(self, cache: Cache, secret: bytes) -> None:
        self._cache = cache
        self._key = derive(secret, SESSIONS)

    async def start(self, token: str, expires_in: float, *, operator_id: str, email: str, role: str,
                    tenant_id: str, lifetime_s: float) -> tuple[str, Session]:
        """A new session: its cookie value and what it holds."""
        ttl = max(1.0, min(lifetime_s, expires_in - 5))
        session = Session(token, operator_id, email, role, tenant_id, secrets.token_urlsafe(24), time.time() + ttl)
        sid = secrets.token_urlsafe(32)
        await self._cache.set(self._name(sid), seal(self._key, msgspec.json.encode(session), context=SESSIONS), ttl)
        return sid, session

    async def find(self, sid: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, expired or tampered with)."""
        session = await self._read(sid, Session)
        return session if session is not None and session.expires_at > time.time() else None

    async def end(self, sid: str | None) -> None:
        if sid:
            await self._cache.delete(self._name(sid))

    async def end_for(self, sid: str, session: Session, reason: str) -> None:
        """End the session at once, leaving `reason` under its name until it would have expired."""
        note = seal(self._key, msgspec.json.encode(Ended(reason)), context=SESSIONS)
        await self._cache.set(self._name(sid), note, max(1.0, session.expires_at - time.time()))

    async def ended(self, sid: str | None) -> str | None:
        """Why the platform ended the session of a cookie value, or None (never so ended, or forgotten)."""
        note = await self._read(sid, Ended)
        return note.ended if note is not None else None

    async def _read(self, sid: str | None, kind: type[T]) -> T | None:
        """What is kept under a cookie value, as `kind`; None when absent, tampered with or of another kind."""
        if not sid or len(sid) > 100:
            return None
        sealed = await self._cache.get(self._name(sid))
        if sealed is None:
            return None
        try:
            return msgspec.json.decode(unseal(self._key, sealed, context=SESSIONS), type=kind)
        except (InvalidTag, msgspec.DecodeError):
            return None

    def _name(self, sid: str) -> str:
        return "session:" + hashlib.sha256(sid.encode()).hexdigest()


def csrf_ok(session: Session, sent: object) -> bool:
    """Whether a form's CSRF field is the session's own."""
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), session.csrf.encode())
