"""The rule worker: reads `player.events.processed` in a consumer group of its own, matches each
event against its game's rules, counts events towards "N within a session", honours each rule's
cooldown per player, and accepts a notification for each firing.

Idempotent under replays: counted events are kept by id, and a firing's idempotency key is the
rule and the event that fired it, so an event read twice notifies once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.dead_letters import dead_letter
from gamemetrics.events.notification_requests import NotificationRequest
from gamemetrics.events.processed import ProcessedEvent, UnreadableProcessedEvent, read_processed
from gamemetrics.ports.bus import NOTIFICATIONS_DLQ, PROCESSED_EVENTS, Bus, Message, Record
from gamemetrics.services.notifier import store
from gamemetrics.services.notifier.accept import Acceptor, Refused
from gamemetrics.services.notifier.rules import Rule, RuleInvalid, event_fields, parse_rule, stored_rule
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body
from gamemetrics.web.responses import json_response

GROUP = "notifier-rules"
RULES = "/v1/games/{game_id}/notification-rules"
SEND = "notifications:send"
log = structlog.get_logger("notifier")

Decoded = list[tuple[Record, ProcessedEvent]]


def decode(records: list[Record]) -> Decoded:
    """The batch's events; one that cannot be read is logged and skipped (the processor wrote it)."""
    decoded: Decoded = []
    for record in records:
        try:
            decoded.append((record, read_processed(record)))
        except UnreadableProcessedEvent as exc:
            log.warning("processed event skipped by the rules", reason=str(exc))
    return decoded


async def _rules(conn: AsyncConnection, games: set[tuple[uuid.UUID, uuid.UUID]],
                 event_types: set[str]) -> dict[tuple[uuid.UUID, uuid.UUID], list[Rule]]:
    cur = await conn.execute(
        "SELECT tenant_id, game_id, name, rule FROM notification_rules WHERE enabled AND event_type = ANY(%s)"
        " AND (tenant_id, game_id) IN (SELECT * FROM unnest(%s::uuid[], %s::uuid[]))",
        (list(event_types), [t for t, _ in games], [g for _, g in games]))
    found: dict[tuple[uuid.UUID, uuid.UUID], list[Rule]] = {}
    for tenant, game, name, body in await cur.fetchall():
        found.setdefault((tenant, game), []).append(stored_rule(name, body))
    return found


async def _counted(conn: AsyncConnection, rule: Rule, event: ProcessedEvent, properties: dict[str, Any]) -> bool:
    """Count `event` towards `rule`'s N-in-a-session; True when this event makes N (the count restarts)."""
    if rule.count <= 1:
        return True
    key = (event.tenant_id, event.game_id, rule.name, event.player_id, rule.bucket(event.session_id, properties))
    cur = await conn.execute(
        "INSERT INTO notification_rule_progress (tenant_id, game_id, rule, player_id, bucket, event_ids)"
        " VALUES (%s, %s, %s, %s, %s, ARRAY[%s::uuid]) ON CONFLICT (tenant_id, game_id, rule, player_id, bucket)"
        " DO UPDATE SET event_ids = CASE"
        "   WHEN %s::uuid = ANY(notification_rule_progress.event_ids)"
        "     OR notification_rule_progress.fired_by IS NOT DISTINCT FROM %s::uuid"
        "   THEN notification_rule_progress.event_ids ELSE notification_rule_progress.event_ids || %s::uuid END"
        " RETURNING cardinality(event_ids), fired_by", (*key, event.event_id, event.event_id, event.event_id,
                                                         event.event_id))
    row = await cur.fetchone()
    if row is not None and row[1] == event.event_id:
        return True  # the event that fired, read again
    if row is None or row[0] < rule.count:
        return False
    await conn.execute("UPDATE notification_rule_progress SET event_ids = '{}', fired_by = %s WHERE tenant_id = %s"
                       " AND game_id = %s AND rule = %s AND player_id = %s AND bucket = %s", (event.event_id, *key))
    return True


async def _cooled(conn: AsyncConnection, rule: Rule, event: ProcessedEvent) -> bool:
    """Whether the rule may fire for the player at the event's time (its cooldown has passed); records the firing."""
    cur = await conn.execute(
        "INSERT INTO notification_rule_fires (tenant_id, game_id, rule, player_id, fired_at, fired_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, game_id, rule, player_id) DO UPDATE"
        " SET fired_at = excluded.fired_at, fired_by = excluded.fired_by"
        " WHERE notification_rule_fires.fired_at <= excluded.fired_at - make_interval(secs => %s)"
        "    OR notification_rule_fires.fired_by = excluded.fired_by"  # the firing event, read again
        " RETURNING 1", (event.tenant_id, event.game_id, rule.name, event.player_id, event.timestamp,
                         event.event_id, rule.cooldown_seconds))
    return await cur.fetchone() is not None


class RuleWorker:
    """Matches processed events against the rules and accepts what fires."""

    def __init__(self, pool: AsyncConnectionPool, bus: Bus, acceptor: Acceptor, *, poll_timeout: float = 1.0,
                 batch_size: int = 500) -> None:
        self._pool = pool
        self._bus = bus
        self._acceptor = acceptor
        self.loop: ConsumerLoop[Decoded] = ConsumerLoop(bus, GROUP, [PROCESSED_EVENTS], prepare=decode,
                                                        sink=self._apply, batch_size=batch_size,
                                                        poll_timeout=poll_timeout)

    async def run(self) -> None:
        await self.loop.run()

    async def _apply(self, batch: Decoded) -> None:
        if not batch:
            return
        async with self._pool.connection() as conn:
            rules = await _rules(conn, {(e.tenant_id, e.game_id) for _, e in batch},
                                 {e.event_type for _, e in batch})
        if not rules:
            return
        firing: list[tuple[Record, Rule, ProcessedEvent, dict[str, Any]]] = []
        async with self._pool.connection() as conn, conn.transaction():
            for record, event in batch:
                candidates = rules.get((event.tenant_id, event.game_id), ())
                properties = _properties(event)
                fields = event_fields(event)
                for rule in candidates:
                    if not rule.matches(event.event_type, fields, properties):
                        continue
                    if await _counted(conn, rule, event, properties) and await _cooled(conn, rule, event):
                        firing.append((record, rule, event, properties))
        letters = [letter for record, rule, event, properties in firing
                   if (letter := await self._fire(record, rule, event, properties)) is not None]
        if letters:
            await self._bus.producer().send(NOTIFICATIONS_DLQ, letters)

    async def _fire(self, record: Record, rule: Rule, event: ProcessedEvent,
                    properties: dict[str, Any]) -> Message | None:
        data = {**rule.data, "event": {"event_type": event.event_type, "properties": properties,
                                       "timestamp": event.timestamp.isoformat()}}
        request = NotificationRequest(event.tenant_id, event.game_id, event.player_id, rule.template, data,
                                      rule.channels, idempotency_key=f"rule:{rule.name}:{event.event_id}",
                                      requested_by=f"rule:{rule.name}")
        try:
            await self._acceptor.accept(request)
        except Refused as exc:
            reason = f"rule {rule.name!r}: {exc.status}: {exc.reason}"
            log.info("rule firing refused", tenant_id=str(event.tenant_id), rule=rule.name, reason=reason)
            return dead_letter(record, reason, event.tenant_id, record.value)
        return None


def _properties(event: ProcessedEvent) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(event.properties)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class RuleRoutes:
    """`PUT`, `GET`, `DELETE /v1/games/{game_id}/notification-rules/{name}`."""

    def __init__(self, pool: AsyncConnectionPool, guard: Guard) -> None:
        self._pool = pool
        self._guard = guard

    async def put(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        name = request.path_params["name"]
        try:
            rule = parse_rule(name, await json_body(request))
        except RuleInvalid as exc:
            raise ApiError(422, str(exc)) from None
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            if await store.load_template(conn, principal.tenant_id, game_id, rule.template) is None:
                raise ApiError(422, f"no template {rule.template!r} in this game; save it first")
            body = rule.json()
            del body["name"]
            cur = await conn.execute(
                "INSERT INTO notification_rules (tenant_id, game_id, name, event_type, rule, enabled)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, game_id, name) DO UPDATE SET"
                " event_type = excluded.event_type, rule = excluded.rule, enabled = excluded.enabled,"
                " updated_at = now() RETURNING xmax = 0",
                (principal.tenant_id, game_id, name, rule.event_type, Jsonb(body), rule.enabled))
            row = await cur.fetchone()
        return json_response(rule.json(), 201 if row and row[0] else 200)

    async def get(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            cur = await conn.execute("SELECT rule FROM notification_rules WHERE tenant_id = %s AND game_id = %s"
                                     " AND name = %s", (principal.tenant_id, game_id, request.path_params["name"]))
            row = await cur.fetchone()
        if row is None:
            raise ApiError(404, f"no rule {request.path_params['name']!r} in this game")
        return json_response(stored_rule(request.path_params["name"], row[0]).json())

    async def delete(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            cur = await conn.execute("DELETE FROM notification_rules WHERE tenant_id = %s AND game_id = %s"
                                     " AND name = %s", (principal.tenant_id, game_id, request.path_params["name"]))
        if cur.rowcount == 0:
            raise ApiError(404, f"no rule {request.path_params['name']!r} in this game")
        return Response(status_code=204)

    def routes(self) -> Sequence[Route]:
        return [Route(RULES + "/{name}", self.put, methods=["PUT"]),
                Route(RULES + "/{name}", self.get, methods=["GET"]),
                Route(RULES + "/{name}", self.delete, methods=["DELETE"])]
