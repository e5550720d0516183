"""Player profiles: `GET`, `PUT`, `PATCH /v1/games/{game_id}/players/{player_id}` and a paged,
searchable list. The profile is the `players` row the processor keeps (activity, platform,
revenue, read-only here) and its traits, which `identify` events merge into and these routes
replace (PUT) or patch (PATCH, a JSON merge patch, RFC 7396)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.settings import Settings
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_player
from gamemetrics.web.responses import json_response

READ, WRITE = "players:read", "players:write"
PROFILE_COLUMNS = (
    "player_id", "first_seen", "last_seen", "first_day", "platform", "os", "country", "app_version", "events",
    "sessions", "lifetime_revenue_usd", "best_score", "traits", "updated_at",
)
PROFILE_SELECT = ", ".join(PROFILE_COLUMNS)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_traits(traits: Any, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """Traits as the processor would store them from an identify: an object, bounded, no NUL."""
    if not isinstance(traits, dict):
        raise ApiError(400, 'traits must be a JSON object: {"traits": {...}}')
    encoded = msgspec.json.encode(traits)
    if len(encoded) > max_bytes:
        raise ApiError(413, f"traits are {len(encoded)} bytes; at most {max_bytes}")
    if b"\\u0000" in encoded:
        raise ApiError(400, "traits may not contain NUL characters")

    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0

    if depth(traits) > max_depth:
        raise ApiError(400, f"traits are nested deeper than {max_depth} levels")
    return traits


def profile(game_id: uuid.UUID, row: tuple[Any, ...]) -> dict[str, Any]:
    return {"game_id": game_id, **dict(zip(PROFILE_COLUMNS, row, strict=True))}


class PlayerRoutes:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, guard: Guard, tombstones: Tombstones) -> None:
        self._settings = settings
        self._pool = pool
        self._guard = guard
        self._tombstones = tombstones

    async def _game(self, request: Request, scope: str) -> tuple[uuid.UUID, uuid.UUID]:
        principal, game_id = await self._guard.tenant_game(request, scope)
        return principal.tenant_id, game_id

    async def get(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        async with self._pool.connection() as conn:
            row = await _profile_row(conn, tenant_id, game_id, path_player(request))
        if row is None:
            raise ApiError(404, "no such player in this game")
        return json_response(profile(game_id, row))

    async def put(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, WRITE)
        body = await json_body(request)
        traits = check_traits(body.get("traits") if isinstance(body, dict) else None, **self._limits())
        return await self._write(tenant_id, game_id, path_player(request), lambda _: traits)

    async def patch(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, WRITE)
        body = await json_body(request, media_types=("application/merge-patch+json", "application/json"))
        if not isinstance(body, dict) or set(body) - {"traits"}:
            raise ApiError(400, 'only traits can be changed: {"traits": {"key": "value", "removed": null}}')
        patch = body.get("traits", {})
        return await self._write(tenant_id, game_id, path_player(request),
                                 lambda old: check_traits(merge_patch(old, patch), **self._limits()))

    def _limits(self) -> dict[str, int]:
        limits = self._settings.ingest
        return {"max_bytes": limits.max_properties_bytes, "max_depth": limits.max_properties_depth}

    async def _write(self, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, traits_from: Any) -> Response:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT 1 FROM erased_players WHERE player_hash = %s",
                                     (self._tombstones.player_hash(tenant_id, game_id, player_id),))
            if await cur.fetchone() is not None:
                raise ApiError(410, "this player was erased; their profile cannot be written again")
            cur = await conn.execute(
                "SELECT traits FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s FOR UPDATE",
                (tenant_id, game_id, player_id),
            )
            old = await cur.fetchone()
            traits = msgspec.json.encode(traits_from(old[0] if old else {})).decode()
            if old is None:
                # A profile made before any event: first and last seen are now; no activity yet.
                await conn.execute(
                    "INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen, traits)"
                    " VALUES (%s, %s, %s, now(), now(), %s)", (tenant_id, game_id, player_id, traits),
                )
            else:
                await conn.execute(
                    "UPDATE players SET traits = %s, updated_at = now() WHERE tenant_id = %s AND game_id = %s"
                    " AND player_id = %s", (traits, tenant_id, game_id, player_id),
                )
            row = await _profile_row(conn, tenant_id, game_id, player_id)
        assert row is not None
        return json_response(profile(game_id, row), 201 if old is None else 200)

    async def listing(self, request: Request) -> Response:
        """Players ordered by id, `limit` at a time after `after`; `q` matches an id prefix or a trait value."""
        tenant_id, game_id = await self._game(request, READ)
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", "50")), 1), self._settings.users.players_page_max)
        except ValueError:
            raise ApiError(400, "limit is an integer") from None
        after, q = params.get("after", ""), params.get("q", "")
        if "\x00" in after + q or len(q) > 256:
            raise ApiError(400, "q has at most 256 characters; neither q nor after may contain NUL")
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {PROFILE_SELECT} FROM players WHERE tenant_id = %s AND game_id = %s AND player_id > %s"
                " AND (%s = '' OR player_id ILIKE %s || '%%' OR EXISTS ("
                "   SELECT 1 FROM jsonb_each_text(traits) AS t WHERE t.value ILIKE '%%' || %s || '%%'))"
                " ORDER BY player_id LIMIT %s",
                (tenant_id, game_id, after, q, like, like, limit + 1),
            )
            rows = await cur.fetchall()
        page = [profile(game_id, row) for row in rows[:limit]]
        more = len(rows) > limit
        return json_response({"players": page, "next": page[-1]["player_id"] if more else None})

    def routes(self) -> list[Route]:
        one = "/v1/games/{game_id}/players/{player_id}"
        return [
            Route("/v1/games/{game_id}/players", self.listing, methods=["GET"]),
            Route(one, self.get, methods=["GET"]),
            Route(one, self.put, methods=["PUT"]),
            Route(one, self.patch, methods=["PATCH"]),
        ]


async def _profile_row(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                       player_id: str) -> tuple[Any, ...] | None:
    cur = await conn.execute(
        f"SELECT {PROFILE_SELECT} FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s",
        (tenant_id, game_id, player_id),
    )
    return await cur.fetchone()
