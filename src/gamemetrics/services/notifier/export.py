"""Export (GDPR Art. 15 and 20) of what the notifier holds about a player:
`GET /v1/games/{game_id}/players/{player_id}/notification-data` (scope `players:read`) answers
their preferences, registered devices, and every notification with each channel's address, text
and state."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.services.notifier import store
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import path_player
from gamemetrics.web.responses import json_response

EXPORT = "/v1/games/{game_id}/players/{player_id}/notification-data"
SCOPE = "players:read"
_DELIVERY = ("channel", "state", "reason", "attempts", "recipient", "subject", "body", "sent_at", "read_at")


class ExportRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard) -> None:
        self._pool = pool
        self._guard = guard

    async def export(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SCOPE)
        player_id = path_player(request)
        tenant = principal.tenant_id
        async with store.tenant_transaction(self._pool, tenant) as conn:
            preferences = await store.load_preferences(conn, tenant, game_id, player_id)
            cur = await conn.execute("SELECT kind, address, created_at FROM notification_devices WHERE tenant_id = %s"
                                     " AND game_id = %s AND player_id = %s ORDER BY created_at",
                                     (tenant, game_id, player_id))
            devices = [{"kind": k, "address": a, "registered_at": at} for k, a, at in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT n.notification_id, n.template, n.category, n.created_at, n.send_at, "
                + ", ".join(f"d.{c}" for c in _DELIVERY)
                + " FROM notifications n JOIN notification_deliveries d USING (tenant_id, notification_id)"
                " WHERE n.tenant_id = %s AND n.game_id = %s AND n.player_id = %s ORDER BY n.created_at, d.channel",
                (tenant, game_id, player_id))
            notifications: dict[Any, dict[str, Any]] = {}
            for notification_id, template, category, created_at, send_at, *delivery in await cur.fetchall():
                entry = notifications.setdefault(notification_id, {
                    "id": notification_id, "template": template, "category": category, "created_at": created_at,
                    "send_at": send_at, "channels": []})
                entry["channels"].append(dict(zip(_DELIVERY, delivery, strict=True)))
        return json_response({"game_id": game_id, "player_id": player_id, "preferences": preferences.json(),
                              "devices": devices, "notifications": list(notifications.values())})

    def routes(self) -> list[Route]:
        return [Route(EXPORT, self.export, methods=["GET"])]
