"""W3C trace context (`traceparent`) carried from an ingest request into the bus messages it produces.

Ingest continues the caller's trace when the request has a valid `traceparent` header, and starts
one otherwise; every message appended for that request carries a child span of it, so a trace
follows an event from the HTTP request through the raw topic to the processor and its DLQ.
"""

from __future__ import annotations

import functools
import random
import re
import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

TRACEPARENT = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)
_random = random.Random()


def child_of(parent: str | None) -> str:
    """A new span in `parent`'s trace (sampling flag kept), or the root of a new trace if `parent` is unusable."""
    trace = _trace_of(parent) if parent else None
    if trace is not None:
        # A span id needs to be unique, not secret: the fast generator keeps this off the hot
        # path's profile (it runs once per message), and `or 1` keeps it from being all zeros.
        trace_id, flags = trace
        return f"00-{trace_id}-{_random.getrandbits(64) or 1:016x}-{flags}"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@functools.lru_cache(maxsize=1024)
def _trace_of(parent: str) -> tuple[str, str] | None:
    """The trace id and flags of a valid `traceparent`. Cached: the processor asks once per message,
    and all the messages of one ingest request carry the same parent."""
    found = _FORMAT.match(parent.strip().lower())
    if found and found.group(1) != "0" * 32 and found.group(2) != "0" * 16:
        return found.group(1), found.group(3)
    return None


def current_traceparent() -> str | None:
    """The span of the request being served, if any."""
    return _current.get()


class TraceContextMiddleware:
    """Sets the request's span (a child of its `traceparent` header, or a new root) for the handlers below."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None)
        token = _current.set(child_of(header))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
