"""Export (GDPR Art. 15 and 20) of what the notifier holds about a player: their preferences,
registered devices (push tokens, Web Push subscriptions), every notification with each channel's
address, text and state, their inbox and the outbox copies of their messages.

`player_notifications` is the registry's `gdpr_export`: the users service's export of a player
calls it in its own transaction. `GET /v1/games/{game_id}/players/{player_id}/notification-data`
(scope `players:read`) answers the same part alone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import path_player
from gamemetrics.web.responses import json_response

EXPORT = "/v1/games/{game_id}/players/{player_id}/notification-data"
SCOPE = "players:read"
_DELIVERY = ("channel", "state", "reason", "attempts", "recipient", "subject", "body", "sent_at", "read_at")
_OUTBOX = ("created_at", "channel", "recipient", "subject", "body", "message_id")


async def player_notifications(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                               player_id: str) -> Mapping[str, Any]:
    """What the notifier holds about the player, read in the caller's transaction under their tenant."""
    from gamemetrics.services.notifier.store import load_preferences  # the store pulls in the template engine

    # Row-level security of the notifier's tables shows the tenant's rows only.
    await conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)", (str(tenant_id),))
    key = (tenant_id, game_id, player_id)
    preferences = await load_preferences(conn, *key)
    cur = await conn.execute("SELECT kind, address, created_at FROM notification_devices WHERE tenant_id = %s"
                             " AND game_id = %s AND player_id = %s ORDER BY created_at, kind, address", key)
    devices = [{"kind": k, "address": a, "registered_at": at} for k, a, at in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT n.notification_id, n.template, n.category, n.created_at, n.send_at, "
        + ", ".join(f"d.{c}" for c in _DELIVERY)
        + " FROM notifications n JOIN notification_deliveries d USING (tenant_id, notification_id)"
        " WHERE n.tenant_id = %s AND n.game_id = %s AND n.player_id = %s ORDER BY n.created_at, d.channel", key)
    notifications: dict[Any, dict[str, Any]] = {}
    inbox: list[dict[str, Any]] = []
    for notification_id, template, category, created_at, send_at, *delivery in await cur.fetchall():
        entry = notifications.setdefault(notification_id, {
            "id": notification_id, "template": template, "category": category, "created_at": created_at,
            "send_at": send_at, "channels": []})
        channel = dict(zip(_DELIVERY, delivery, strict=True))
        entry["channels"].append(channel)
        if channel["channel"] == "in_app" and channel["state"] == "sent":
            inbox.append({"id": notification_id, "title": channel["subject"], "body": channel["body"],
                          "sent_at": channel["sent_at"], "read_at": channel["read_at"]})
    cur = await conn.execute(f"SELECT {', '.join(_OUTBOX)} FROM outbox WHERE tenant_id = %s AND player_id = %s"  # noqa: S608
                             " AND message_id IN (SELECT d.message_id FROM notification_deliveries d"
                             " JOIN notifications n USING (tenant_id, notification_id)"
                             " WHERE n.tenant_id = %s AND n.game_id = %s AND n.player_id = %s)"
                             " ORDER BY created_at, message_id", (tenant_id, player_id, *key))
    outbox = [dict(zip(_OUTBOX, row, strict=True)) for row in await cur.fetchall()]
    return {"preferences": preferences.json(), "devices": devices, "notifications": list(notifications.values()),
            "inbox": inbox, "outbox": outbox}


class ExportRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard) -> None:
        self._pool = pool
        self._guard = guard

    async def export(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SCOPE)
        player_id = path_player(request)
        async with self._pool.connection() as conn, conn.transaction():
            part = await player_notifications(conn, principal.tenant_id, game_id, player_id)
        return json_response({"game_id": game_id, "player_id": player_id, **part})

    def routes(self) -> list[Route]:
        return [Route(EXPORT, self.export, methods=["GET"])]
