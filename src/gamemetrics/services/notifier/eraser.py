"""Erasure from the notifier's store: the player's preferences, push registrations, rule counts and
cooldowns, and the outbox copies of their messages are deleted; their notifications stay as counts,
without the player, their addresses or what was said; their requests on the embedded bus are
deleted."""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import StoreState
from gamemetrics.ports.bus import NOTIFICATION_REQUESTS, Bus, Erasable

_FORGET = """
WITH theirs AS (
    UPDATE notifications SET player_id = NULL, idempotency_key = NULL
    WHERE tenant_id = %(tenant)s AND game_id = %(game)s AND player_id = %(player)s
    RETURNING tenant_id, notification_id
), cleared AS (
    UPDATE notification_deliveries d SET recipient = '', subject = '', body = '', headers = '{}',
           reason = CASE WHEN d.state IN ('queued', 'sending') THEN 'erased' ELSE d.reason END,
           state = CASE WHEN d.state IN ('queued', 'sending') THEN 'suppressed' ELSE d.state END
    FROM theirs WHERE (d.tenant_id, d.notification_id) = (theirs.tenant_id, theirs.notification_id)
    RETURNING d.tenant_id, d.message_id
), outboxed AS (
    DELETE FROM outbox o USING cleared WHERE (o.tenant_id, o.message_id) = (cleared.tenant_id, cleared.message_id)
    RETURNING 1
), choices AS (
    DELETE FROM notification_preferences
    WHERE tenant_id = %(tenant)s AND game_id = %(game)s AND player_id = %(player)s RETURNING 1
), progress AS (
    DELETE FROM notification_rule_progress
    WHERE tenant_id = %(tenant)s AND game_id = %(game)s AND player_id = %(player)s RETURNING 1
), fires AS (
    DELETE FROM notification_rule_fires
    WHERE tenant_id = %(tenant)s AND game_id = %(game)s AND player_id = %(player)s RETURNING 1
), devices AS (
    DELETE FROM notification_devices
    WHERE tenant_id = %(tenant)s AND game_id = %(game)s AND player_id = %(player)s RETURNING 1
)
SELECT (SELECT count(*) FROM cleared) + (SELECT count(*) FROM outboxed) + (SELECT count(*) FROM choices)
     + (SELECT count(*) FROM progress) + (SELECT count(*) FROM fires) + (SELECT count(*) FROM devices)
"""


class NotificationsEraser:
    """The `notifications` store's eraser; each step is idempotent."""

    name = "notifier"
    stores = ("notifications",)

    def __init__(self, pool: AsyncConnectionPool, bus: Bus) -> None:
        self._pool = pool
        self._bus = bus

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        """Forget the player in the notifier's tables, then their requests on the embedded bus."""
        params = {"tenant": request.tenant_id, "game": request.game_id, "player": request.player_id}
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_FORGET, params)
            row = await cur.fetchone()
        rows = int(row[0]) if row else 0
        if isinstance(self._bus, Erasable):
            rows += await self._bus.erase(NOTIFICATION_REQUESTS,
                                          request.tenant_id.bytes + request.player_id.encode())
        return {"notifications": StoreState("erased", rows=rows)}
