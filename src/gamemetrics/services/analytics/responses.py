"""Whole answers to repeated GraphQL requests, kept per process.

A dashboard asks the same documents with the same variables on every refresh. An answer is kept
under the tenant, the exact request body, the current UTC minute (answers about "today" or "the
current minute" move on with the clock) and the tenant's data version: its games and, per game,
the stored and dead-lettered event counters the processor bumps in the transactions that change
the rollups, and the deleted-player counter an erasure bumps. New data changes the version, so a
kept answer is given again only while nothing has landed since. The version is read under
row-level security at most once per GAMEMETRICS_ANALYTICS_VERSION_TTL_MS (default 100 ms; 0 reads
it on every request), so a hit costs no GraphQL execution and usually no query, and an answer is
at most that much older than the data.

A request naming a data-quality field (ingest's refusals, dead letters and their replays) is never
kept: those rows change without moving the version (ingest flushes its counts, an operator replays
a letter), and the page that asks them is opened by hand, not refreshed every second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Hashable
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.services.analytics.store import AnalyticsStore

MAX_BODY = 64 * 1024
MAX_ANSWER = 1024 * 1024
# Fields whose rows do not move the data version; a field is named in its document as written, so a
# request that asks one contains its name (any other mention costs only a kept answer).
UNVERSIONED = (b"ingestRefusals", b"deadLetter")

# A kept answer: the response's headers and body.
Answer = tuple[list[tuple[bytes, bytes]], bytes]
# The tenant, the request body, the UTC minute and the tenant's data version.
AnswerKey = tuple[uuid.UUID, bytes, datetime, Hashable]


async def tenant_version(store: AnalyticsStore, tenant_id: uuid.UUID) -> Hashable:
    """What changes whenever anything the tenant can ask about changes."""
    async with store.tenant(tenant_id) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM games WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(sum(events_stored), 0)::bigint FROM game_counters WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(sum(events_dead_lettered), 0)::bigint FROM game_counters WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(sum(players_deleted), 0)::bigint FROM game_counters WHERE tenant_id = %(t)s),"
            " (SELECT coalesce(sum(events_moved), 0)::bigint FROM game_counters WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM game_counters WHERE tenant_id = %(t)s)",
            {"t": tenant_id},
        )
        return await cur.fetchone()


class TenantVersions:
    """Each tenant's data version, read at most once per `ttl_s` (0: on every request); callers
    that arrive while a read is under way share it. `known` keeps each version with the time its
    read started, from which its age counts."""

    def __init__(self, store: AnalyticsStore, ttl_s: float, known: Memo[uuid.UUID, tuple[float, Hashable]]) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._known = known
        self._reading: dict[uuid.UUID, asyncio.Future[Hashable]] = {}

    async def get(self, tenant_id: uuid.UUID) -> Hashable:
        if self._ttl_s <= 0:
            return await tenant_version(self._store, tenant_id)
        known = self._known.get(tenant_id)
        if known is not MISS and time.monotonic() - known[0] < self._ttl_s:
            return known[1]
        reading = self._reading.get(tenant_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(tenant_id))
            self._reading[tenant_id] = reading
        return await asyncio.shield(reading)

    async def _read(self, tenant_id: uuid.UUID) -> Hashable:
        started = time.monotonic()
        try:
            version = await tenant_version(self._store, tenant_id)
        finally:
            self._reading.pop(tenant_id, None)
        self._known.put(tenant_id, (started, version))
        return version


class ResponseCache:
    """ASGI middleware before the GraphQL view: replays a kept answer, or keeps a new one that has
    no errors. Only POSTed JSON of an authenticated caller is considered."""

    def __init__(self, app: ASGIApp, versions: TenantVersions, answers: Memo[AnswerKey, Answer]) -> None:
        self._app = app
        self._versions = versions
        self._answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("state", {}).get("principal")
        if scope["type"] != "http" or scope["method"] != "POST" or principal is None:
            await self._app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        if more or any(name in body for name in UNVERSIONED):
            # Too large to be a dashboard query worth keeping, or asking what the version misses.
            await self._app(scope, _replay(body, receive, more=more), send)
            return
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        key = (principal.tenant_id, body, minute, await self._versions.get(principal.tenant_id))
        kept = self._answers.get(key)
        if kept is not MISS:
            await _send_answer(send, *kept)
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)
            await send(message)

        await self._app(scope, _replay(body, receive), capture)
        answer = _answer_of(captured)
        if answer is not None:
            self._answers.put(key, answer)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether it is larger than MAX_BODY (then only its start is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """`receive` again from the start: what was read first, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed


def _answer_of(messages: list[Message]) -> Answer | None:
    """Status 200 without GraphQL errors, small enough to keep; None otherwise."""
    if not messages or messages[0]["type"] != "http.response.start" or messages[0]["status"] != 200:
        return None
    body = b"".join(m.get("body", b"") for m in messages[1:] if m["type"] == "http.response.body")
    if len(body) > MAX_ANSWER or b'"errors"' in body:
        return None
    return list(messages[0].get("headers", [])), body


async def _send_answer(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
