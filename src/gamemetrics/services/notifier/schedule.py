"""Scheduled rules: every `notify_schedule_seconds` the notifier looks for the players each
inactivity rule names (no event for N days) and notifies each once per spell of inactivity, within
the rule's cooldown.

A player's spell is known by their `last_seen`; the notification's idempotency key names the rule,
the player and that time, and the firing is recorded after the notification is accepted, so a
notifier that stops between the two notifies the player once, not never.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import structlog
from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.notification_requests import NotificationRequest
from gamemetrics.services.notifier.accept import Acceptor, Refused
from gamemetrics.services.notifier.rules import stored_rule

log = structlog.get_logger("notifier")
BATCH = 500
_SPELL = uuid.UUID("5d0b1c7e-9a54-4f39-9a7e-3f0a6d7c2b11")  # namespace of a player's spell's id

_DUE = """
SELECT p.player_id, p.last_seen FROM players p
LEFT JOIN notification_rule_fires f
       ON (f.tenant_id, f.game_id, f.rule, f.player_id) = (p.tenant_id, p.game_id, %(rule)s, p.player_id)
WHERE p.tenant_id = %(tenant)s AND p.game_id = %(game)s
  AND p.last_seen < now() - make_interval(secs => %(idle)s)
  AND (f.fired_at IS NULL OR (f.fired_at < p.last_seen AND f.fired_at <= now() - make_interval(secs => %(cool)s)))
ORDER BY p.last_seen LIMIT %(limit)s
"""


class Scheduler:
    """Runs the inactivity rules of every tenant, one pass each interval."""

    def __init__(self, pool: AsyncConnectionPool, acceptor: Acceptor, *, interval_seconds: float) -> None:
        self._pool = pool
        self._acceptor = acceptor
        self._interval = interval_seconds

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:  # the database away: the next pass finds the same players
                log.warning("scheduled rules pass failed; trying again", exc_info=True)
            await asyncio.sleep(self._interval)

    async def once(self) -> int:
        """One pass over every scheduled rule; how many notifications it accepted."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT tenant_id, game_id, name, rule FROM notification_rules"
                                     " WHERE enabled AND event_type = ''")
            rules = [(tenant, game, stored_rule(name, body)) for tenant, game, name, body in await cur.fetchall()]
        sent = 0
        for tenant, game, rule in rules:
            if rule.inactive_days is None:
                continue
            async with self._pool.connection() as conn:
                cur = await conn.execute(_DUE, {"rule": rule.name, "tenant": tenant, "game": game,
                                                "idle": rule.inactive_days * 86400, "cool": rule.cooldown_seconds,
                                                "limit": BATCH})
                due: list[tuple[str, datetime]] = await cur.fetchall()
            for player_id, last_seen in due:
                request = NotificationRequest(
                    tenant, game, player_id, rule.template,
                    {**rule.data, "inactive_since": last_seen.isoformat()}, rule.channels,
                    idempotency_key=f"rule:{rule.name}:{player_id}:{last_seen.isoformat()}",
                    requested_by=f"rule:{rule.name}")
                try:
                    await self._acceptor.accept(request)
                    sent += 1
                except Refused as exc:
                    log.info("scheduled rule refused", tenant_id=str(tenant), rule=rule.name, reason=exc.reason)
                async with self._pool.connection() as conn:
                    await conn.execute(
                        "INSERT INTO notification_rule_fires (tenant_id, game_id, rule, player_id, fired_at, fired_by)"
                        " VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT (tenant_id, game_id, rule, player_id)"
                        " DO UPDATE SET fired_at = excluded.fired_at, fired_by = excluded.fired_by",
                        (tenant, game, rule.name, player_id,
                         uuid.uuid5(_SPELL, f"{rule.name}:{player_id}:{last_seen.isoformat()}")))
        return sent
