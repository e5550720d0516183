"""Export (GDPR Art. 15 and 20): `GET /v1/games/{game_id}/players/{player_id}/export` answers
everything the platform holds about the player as one JSON document, streamed: the profile, every
event, the daily and session rollups, the dead letters that are their events, and what the
recommender learnt from them (its interactions and the feedback on its answers; the player's vector
is computed from those interactions and is not readable on its own), then each other service's part
(the registry's `gdpr_export`s, e.g. the notifier's), under that service's name. The events include
those that now live only in the archive (read from object storage before the document starts, so a
missing or damaged archive file is a 503 naming it rather than an export without those events)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gamemetrics.archive.layout import ArchiveError
from gamemetrics.archive.players import archived_events
from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.gdpr.exports import PlayerExport
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.objects import Objects, ObjectStoreError
from gamemetrics.services.users.holdings import dead_letters_of
from gamemetrics.services.users.http import actor_of
from gamemetrics.services.users.players import PROFILE_SELECT, profile
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import path_player

SCOPE = "players:read"
_json = msgspec.json.Encoder(decimal_format="number")
_PAGE = 2000
_EVENT_NAMES = (
    "event_id", "event_type", "event_name", "player_id", "session_id", "event_time", "received_at", "source",
    "platform", "os", "app_version", "country", "is_new_player", "revenue_usd", "properties", "context",
)
_EVENTS = ", ".join(_EVENT_NAMES)
_DAY_COLUMNS = ("day", "events", "sessions", "playtime_seconds", "purchases", "revenue_usd", "first_event_at",
                "last_event_at")
_SESSION_COLUMNS = ("session_id", "started_at", "ended_at", "events")
_INTERACTION_COLUMNS = ("event_id", "item_id", "event_type", "at", "country", "platform")
_FEEDBACK_COLUMNS = ("recommendation_id", "kind", "item_id", "source", "at")


class ExportRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, tombstones: Tombstones, audit: AuditLog,
                 objects: Objects | None = None, parts: Sequence[tuple[str, PlayerExport]] = ()) -> None:
        self._objects = objects
        self._pool = pool
        self._parts = parts
        self._guard = guard
        self._tombstones = tombstones
        self._audit = audit

    async def export(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SCOPE)
        player_id = path_player(request)
        player_hash = self._tombstones.player_hash(principal.tenant_id, game_id, player_id)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM erased_players WHERE player_hash = %s),"
                " EXISTS (SELECT 1 FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s),"
                " EXISTS (SELECT 1 FROM events WHERE tenant_id = %s AND game_id = %s AND player_id = %s)",
                (player_hash, *(principal.tenant_id, game_id, player_id) * 2),
            )
            found = await cur.fetchone()
            assert found is not None  # a SELECT of three EXISTS always returns its one row
            erased, has_profile, has_events = found
            archived = [] if erased else await self._archived(principal.tenant_id, game_id, player_id)
            if erased or not (has_profile or has_events or archived or await dead_letters_of(
                    conn, principal.tenant_id, game_id, player_id)):
                raise ApiError(404, "the platform holds nothing about this player")
            await self._audit.append(conn, AuditEntry(
                actor_of(principal), "player.exported", principal.tenant_id, player_hash.hex(),
                {"game_id": str(game_id), "token": principal.token_id}))
        return StreamingResponse(
            self._document(principal.tenant_id, game_id, player_id, archived), media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="player-export-{game_id}.json"',
                     "Cache-Control": "no-store"},
        )

    async def _archived(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str) -> list[dict[str, Any]]:
        if self._objects is None:
            return []
        try:
            return await archived_events(self._objects, tenant_id, game_id, player_id)
        except (ArchiveError, ObjectStoreError) as exc:
            raise ApiError(503, f"the player's archived events cannot be read now, so no export is given: {exc}")\
                from None

    async def _document(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str,
                        archived: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        """The export, written as it is read: one repeatable-read transaction, so the parts agree."""
        key = (tenant_id, game_id, player_id)
        async with self._pool.connection() as conn, conn.transaction():
            # One snapshot for the whole document, however long it takes to send.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = {"player_id": player_id, "game_id": game_id, "tenant_id": tenant_id,
                    "exported_at": datetime.now(UTC)}
            yield _json.encode(head)[:-1] + b', "profile": '
            cur = await conn.execute(
                f"SELECT {PROFILE_SELECT} FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s", key)
            row = await cur.fetchone()
            yield _json.encode(profile(game_id, row) if row else None) + b', "events": ['
            first, after = True, (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
            # The archived events are merged into the online ones by (event time, id), the order of both;
            # a restored day's events are online and archived at once, and are given once.
            pending = iter(archived)
            held = next(pending, None)
            while True:
                cur = await conn.execute(
                    f"SELECT {_EVENTS} FROM events WHERE tenant_id = %s AND game_id = %s AND player_id = %s"
                    " AND (event_time, event_id) > (%s, %s) ORDER BY event_time, event_id LIMIT %s",
                    (*key, *after, _PAGE),
                )
                rows = await cur.fetchall()
                for event in rows:
                    at = (event[5], event[0])
                    while held is not None and (held["event_time"], held["event_id"]) <= at:
                        if (held["event_time"], held["event_id"]) != at:
                            yield (b"" if first else b", ") + _json.encode(held)
                            first = False
                        held = next(pending, None)
                    yield (b"" if first else b", ") + _json.encode(dict(zip(_EVENT_NAMES, event, strict=True)))
                    first = False
                if len(rows) < _PAGE:
                    break
                last = dict(zip(_EVENT_NAMES, rows[-1], strict=True))
                after = (last["event_time"], last["event_id"])
            while held is not None:
                yield (b"" if first else b", ") + _json.encode(held)
                first, held = False, next(pending, None)
            yield b'], "daily_activity": ' + _json.encode(await _rows(
                conn, "player_days", _DAY_COLUMNS, key, "day"))
            yield b', "sessions": ' + _json.encode(await _rows(
                conn, "sessions", _SESSION_COLUMNS, key, "started_at"))
            letters = [{"created_at": at, "reason": reason, "payload": _payload(payload)}
                       for _, at, reason, payload in await dead_letters_of(conn, *key)]
            yield b', "dead_letters": ' + _json.encode(letters)
            yield b', "recommender": {"interactions": ' + _json.encode(await _rows(
                conn, "rec_interactions", _INTERACTION_COLUMNS, key, "at"))
            yield b', "feedback": ' + _json.encode(await _rows(
                conn, "rec_feedback", _FEEDBACK_COLUMNS, key, "at")) + b"}"
            for name, part in self._parts:
                yield b", " + _json.encode(name) + b": " + _json.encode(await part(conn, *key))
            yield b"}"

    def routes(self) -> list[Route]:
        return [Route("/v1/games/{game_id}/players/{player_id}/export", self.export, methods=["GET"])]


async def _rows(conn: Any, table: str, columns: tuple[str, ...], key: tuple[Any, ...],
                order: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE tenant_id = %s AND game_id = %s AND player_id = %s"  # noqa: S608
        f" ORDER BY {order}", key,
    )
    return [dict(zip(columns, row, strict=True)) for row in await cur.fetchall()]


def _payload(payload: bytes) -> Any:
    """A dead letter's bytes: as JSON when they are JSON, else base64."""
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return {"base64": base64.b64encode(payload).decode()}
