"""The notifier's tables: templates, notifications with their delivery records, preferences."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gamemetrics.services.notifier.preferences import Preferences, stored_preferences
from gamemetrics.services.notifier.templates import Template


@asynccontextmanager
async def tenant_transaction(pool: AsyncConnectionPool, tenant_id: uuid.UUID, *,
                             pipelined: bool = False) -> AsyncIterator[AsyncConnection]:
    """A transaction that names `tenant_id`, so row-level security shows and takes that tenant's rows only.

    `pipelined`: statements are sent without waiting for the previous one's answer until a result is
    read, so BEGIN, the tenant's name and the first query cost one round trip (the hot path's)."""
    async with pool.connection() as conn, AsyncExitStack() as stack:
        if pipelined:
            await stack.enter_async_context(conn.pipeline())
        await stack.enter_async_context(conn.transaction())
        await conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)", (str(tenant_id),))
        yield conn


async def save_template(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, t: Template) -> bool:
    """Insert or replace the template; True when it is new."""
    cur = await conn.execute(
        "INSERT INTO notification_templates (tenant_id, game_id, name, category, critical, content, locales,"
        " fallback_locale, sample) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, game_id, name) DO UPDATE SET category = excluded.category,"
        " critical = excluded.critical, content = excluded.content, locales = excluded.locales,"
        " fallback_locale = excluded.fallback_locale, sample = excluded.sample, updated_at = now()"
        " RETURNING xmax = 0",
        (tenant_id, game_id, t.name, t.category, t.critical, Jsonb(t.content), Jsonb(t.locales), t.fallback_locale,
         Jsonb(t.sample)),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def load_template(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, name: str) -> Template | None:
    cur = await conn.execute(
        "SELECT name, category, critical, content, locales, fallback_locale, sample FROM notification_templates"
        " WHERE tenant_id = %s AND game_id = %s AND name = %s", (tenant_id, game_id, name),
    )
    row = await cur.fetchone()
    return Template(*row) if row else None


async def delete_template(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, name: str) -> bool:
    cur = await conn.execute("DELETE FROM notification_templates WHERE tenant_id = %s AND game_id = %s AND name = %s",
                             (tenant_id, game_id, name))
    return cur.rowcount > 0


async def player_traits(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                        player_id: str) -> dict[str, Any] | None:
    """The player's profile traits (`email`, `phone`, `locale`, ...), or None when the game has no such player."""
    cur = await conn.execute("SELECT traits FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s",
                             (tenant_id, game_id, player_id))
    row = await cur.fetchone()
    return dict(row[0] or {}) if row else None


async def load_preferences(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                           player_id: str) -> Preferences:
    """The player's preferences (none set: everything allowed, no quiet hours, no caps)."""
    cur = await conn.execute("SELECT categories, quiet_hours, daily_caps FROM notification_preferences"
                             " WHERE tenant_id = %s AND game_id = %s AND player_id = %s",
                             (tenant_id, game_id, player_id))
    row = await cur.fetchone()
    return stored_preferences(*row) if row else Preferences()


async def set_preferences(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str,
                          preferences: Preferences) -> Preferences:
    """Replace the player's preferences."""
    quiet = preferences.quiet_hours
    await conn.execute(
        "INSERT INTO notification_preferences (tenant_id, game_id, player_id, categories, quiet_hours, daily_caps)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, game_id, player_id) DO UPDATE SET"
        " categories = excluded.categories, quiet_hours = excluded.quiet_hours, daily_caps = excluded.daily_caps,"
        " updated_at = now()",
        (tenant_id, game_id, player_id, Jsonb(preferences.categories), Jsonb(quiet.json()) if quiet else None,
         Jsonb(preferences.daily_caps)),
    )
    return preferences


async def opt_out(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str, category: str,
                  channel: str) -> None:
    """Record one opt-out beside the player's other choices (an unsubscribe link's)."""
    await conn.execute(
        "INSERT INTO notification_preferences (tenant_id, game_id, player_id, categories) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, game_id, player_id) DO UPDATE SET categories = jsonb_set("
        "   notification_preferences.categories, ARRAY[%s::text],"
        "   coalesce(notification_preferences.categories -> %s::text, '{}') || jsonb_build_object(%s::text, false)),"
        " updated_at = now()",
        (tenant_id, game_id, player_id, Jsonb({category: {channel: False}}), category, category, channel),
    )


async def lock_player_channel(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str,
                              channel: str) -> None:
    """Hold the player's channel until the transaction ends (a transaction-level advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       (f"notifier-cap:{tenant_id}:{game_id}:{channel}:{player_id}",))


async def sent_today(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str,
                     channel: str, since: datetime) -> int:
    """Messages on `channel` to the player accepted since `since` and not suppressed or given up (a
    message to several devices counts once)."""
    cur = await conn.execute(
        "SELECT count(DISTINCT n.notification_id) FROM notifications n"
        " JOIN notification_deliveries d USING (tenant_id, notification_id)"
        " WHERE n.tenant_id = %s AND n.game_id = %s AND n.player_id = %s AND d.channel = %s"
        " AND n.created_at >= %s AND d.state IN ('queued', 'sending', 'sent')",
        (tenant_id, game_id, player_id, channel, since))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One channel of a notification, as it is to be written."""

    channel: str
    state: str
    reason: str | None
    recipient: str = ""
    subject: str = ""
    body: str = ""
    headers: dict[str, str] | None = None
    not_before: datetime | None = None
    """Quiet hours: the first attempt waits until then (else until the notification's send_at)."""
    seq: int = 0
    """Which of the channel's records: push and Web Push have one per device."""
    provider: str | None = None
    """Who took it, for a record written `sent` (a message kept in this database as it was accepted)."""
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)


async def existing_notification(conn: AsyncConnection, tenant_id: uuid.UUID,
                                key: str) -> tuple[uuid.UUID, bytes | None] | None:
    """The notification written under `key`, with the hash of its request."""
    cur = await conn.execute("SELECT notification_id, request_hash FROM notifications"
                             " WHERE tenant_id = %s AND idempotency_key = %s", (tenant_id, key))
    row = await cur.fetchone()
    return (row[0], row[1]) if row else None


_INSERT = """
WITH n AS (
    INSERT INTO notifications (tenant_id, notification_id, game_id, player_id, template, category, idempotency_key,
                               request_hash, send_at, send_until)
    SELECT %(t)s, r.id, r.g, r.p, r.template, r.category, r.key, decode(r.hash, 'base64'), r.send_at, r.send_until
    FROM jsonb_to_recordset(%(n)s) AS r(i int, id uuid, g uuid, p text, template text, category text, key text,
                                        hash text, send_at timestamptz, send_until timestamptz)
    ORDER BY r.i
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING notification_id, send_at
), d AS (
    INSERT INTO notification_deliveries (tenant_id, notification_id, channel, seq, state, reason, message_id,
                                         recipient, subject, body, headers, next_attempt_at, attempts, provider,
                                         sent_at)
    SELECT %(t)s, n.notification_id, r.channel, r.seq, r.state, r.reason, r.message_id, r.recipient, r.subject,
           r.body, r.headers, coalesce(r.not_before, n.send_at, now()), (r.state = 'sent')::int, r.provider,
           CASE WHEN r.state = 'sent' THEN now() END
    FROM jsonb_to_recordset(%(d)s) AS r(of uuid, channel text, seq int, state text, reason text, message_id uuid,
                                        recipient text, subject text, body text, headers jsonb,
                                        not_before timestamptz, provider text)
    JOIN n ON n.notification_id = r.of
    RETURNING 1
)
SELECT notification_id, (SELECT count(*) FROM d) FROM n
"""

_JSON = msgspec.json.Encoder()


def json_rows(rows: Any) -> Jsonb:
    """`rows` as one JSON parameter, encoded by msgspec: a batch's rows cost a fraction of what as
    many arrays of each column cost to adapt."""
    return Jsonb(rows, dumps=_JSON.encode)


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification to be written, with its delivery records."""

    game_id: uuid.UUID
    player_id: str
    template: Template
    key: str | None
    send_at: datetime | None
    deliveries: Sequence[DeliveryRow]
    request_hash: bytes | None = None
    send_until: datetime | None = None
    notification_id: uuid.UUID = field(default_factory=uuid.uuid4)


async def insert_notifications(conn: AsyncConnection, tenant_id: uuid.UUID,
                               news: Sequence[NewNotification]) -> AsyncCursor[Any]:
    """Write the notifications and their delivery records in one statement (one whose key was taken
    meanwhile, by another transaction or an earlier one of `news`, is not written). Its cursor
    answers the ids written; read them with `inserted` after the commit, so that in a pipelined
    transaction the statement and the COMMIT share one round trip."""
    return await conn.execute(_INSERT, {"t": tenant_id, "n": json_rows([
        {"i": i, "id": n.notification_id, "g": n.game_id, "p": n.player_id, "template": n.template.name,
         "category": n.template.category, "key": n.key, "hash": n.request_hash, "send_at": n.send_at,
         "send_until": n.send_until} for i, n in enumerate(news)]), "d": json_rows([
        {"of": n.notification_id, "channel": d.channel, "seq": d.seq, "state": d.state, "reason": d.reason,
         "message_id": d.message_id, "recipient": d.recipient, "subject": d.subject, "body": d.body,
         "headers": d.headers or {}, "not_before": d.not_before, "provider": d.provider}
        for n in news for d in n.deliveries])})


async def inserted(cur: AsyncCursor[Any]) -> set[uuid.UUID]:
    """The ids `insert_notifications` wrote."""
    return {row[0] for row in await cur.fetchall()}


_STATE_ORDER = ("queued", "deferred", "sent", "failed", "suppressed")
"""Which state speaks for several: work still to do first, then what reached the player."""


def _delivery_state(state: str, reason: str | None, attempts: int, next_at: datetime, later: bool,
                    sent_at: datetime | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": state, "reason": reason, "attempts": attempts}
    if state in ("queued", "sending"):
        # A claimed delivery is still queued to its caller; a first attempt not yet due is deferred.
        entry["state"] = "deferred" if later and attempts == 0 else "queued"
        entry["deferred_until" if entry["state"] == "deferred" else "next_attempt_at"] = next_at
    if sent_at is not None:
        entry["sent_at"] = sent_at
    return entry


def _channel_state(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A channel's state from its records: the one record's, or for several devices the leading
    state (sent when any device got it), the most attempts, and each device's own under `devices`."""
    if len(records) == 1:
        return records[0]
    state = next(s for s in _STATE_ORDER if any(r["state"] == s for r in records))
    lead = next(r for r in records if r["state"] == state)
    return {**lead, "attempts": max(r["attempts"] for r in records), "devices": records}


async def notification_status(conn: AsyncConnection, tenant_id: uuid.UUID,
                              notification_id: uuid.UUID) -> dict[str, Any] | None:
    """`{"id", "state", "channels": {...}}`, or None when the tenant has no such notification."""
    cur = await conn.execute(
        "SELECT n.game_id, n.player_id, n.template, n.send_at, n.send_until, n.created_at, d.channel, d.state,"
        " d.reason, d.attempts, d.next_attempt_at, d.next_attempt_at > now(), d.sent_at FROM notifications n"
        " JOIN notification_deliveries d USING (tenant_id, notification_id)"
        " WHERE n.tenant_id = %s AND n.notification_id = %s ORDER BY d.channel, d.seq", (tenant_id, notification_id),
    )
    rows = await cur.fetchall()
    if not rows:
        return None
    records: dict[str, list[dict[str, Any]]] = {}
    for *_, channel, state, reason, attempts, next_at, later, sent_at in rows:
        records.setdefault(channel, []).append(_delivery_state(state, reason, attempts, next_at, later, sent_at))
    channels = {channel: _channel_state(theirs) for channel, theirs in records.items()}
    states = {entry["state"] for entry in channels.values()}
    overall = next(s for s in _STATE_ORDER if s in states)
    game_id, player_id, template, send_at, send_until, created_at = rows[0][:6]
    return {"id": notification_id, "game_id": game_id, "player_id": player_id, "template": template,
            "send_at": send_at, "send_until": send_until, "created_at": created_at, "state": overall,
            "channels": channels}


async def given_up(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Deliveries given up (the dead-letter queue as the database keeps it), newest last, every tenant."""
    cur = await conn.execute(
        "SELECT * FROM (SELECT d.updated_at, d.tenant_id, n.game_id, d.notification_id, d.channel, d.attempts,"
        " d.reason FROM notification_deliveries d JOIN notifications n USING (tenant_id, notification_id)"
        " WHERE d.state = 'failed' ORDER BY d.updated_at DESC LIMIT %s) newest ORDER BY updated_at", (limit,))
    names = [column.name for column in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def replay(conn: AsyncConnection, notification_id: uuid.UUID, channel: str | None) -> int:
    """Queue the given-up deliveries of a notification again, attempts from zero; how many."""
    cur = await conn.execute(
        "UPDATE notification_deliveries SET state = 'queued', attempts = 0, next_attempt_at = now(),"
        " reason = 'replayed after: ' || coalesce(reason, ''), updated_at = now()"
        " WHERE notification_id = %s AND state = 'failed' AND (%s::text IS NULL OR channel = %s::text)"
        " AND recipient <> ''", (notification_id, channel, channel))
    return cur.rowcount


async def register_device(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID, player_id: str,
                          kind: str, address: str) -> bool:
    """Keep a push token or Web Push subscription for the player (moved to them if another player had it)."""
    cur = await conn.execute(
        "INSERT INTO notification_devices (tenant_id, game_id, player_id, kind, address) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, game_id, kind, address) DO UPDATE SET player_id = excluded.player_id,"
        " created_at = now() RETURNING xmax = 0", (tenant_id, game_id, player_id, kind, address))
    row = await cur.fetchone()
    return bool(row and row[0])


async def forget_device(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID | None, kind: str,
                        address: str, player_id: str | None = None) -> int:
    cur = await conn.execute(
        "DELETE FROM notification_devices WHERE tenant_id = %s AND (%s::uuid IS NULL OR game_id = %s::uuid)"
        " AND kind = %s AND address = %s AND (%s::text IS NULL OR player_id = %s::text)",
        (tenant_id, game_id, game_id, kind, address, player_id, player_id))
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class AcceptContext:
    """What accepting a request reads, in one round trip: the key's notification if it was seen,
    the template, the player's traits (None: no such player), preferences and devices."""

    existing: uuid.UUID | None
    existing_hash: bytes | None
    template: Template | None
    traits: dict[str, Any] | None
    preferences: Preferences
    devices: dict[str, list[str]]
    """Per kind, the player's devices, newest first."""


MAX_DEVICES = 20
"""Devices of a kind a message goes to, the newest: a player's stale tokens are removed as providers refuse them."""

_CONTEXTS = """
SELECT e.notification_id, e.request_hash,
       jsonb_build_array(t.name, t.category, t.critical, t.content, t.locales, t.fallback_locale, t.sample),
       CASE WHEN pl.player_id IS NOT NULL THEN coalesce(pl.traits, '{}') END,
       CASE WHEN pr.player_id IS NOT NULL THEN jsonb_build_array(pr.categories, pr.quiet_hours, pr.daily_caps) END,
       (SELECT jsonb_object_agg(kind, (addresses)[1:%(devices)s]) FROM (
          SELECT kind, array_agg(address ORDER BY created_at DESC, address) AS addresses FROM notification_devices
           WHERE tenant_id = %(t)s AND game_id = r.g AND player_id = r.p GROUP BY kind) theirs),
       t.name IS NOT NULL
FROM jsonb_to_recordset(%(asked)s) AS r(i int, g uuid, p text, name text, key text)
LEFT JOIN notifications e ON e.tenant_id = %(t)s AND e.idempotency_key = r.key
LEFT JOIN notification_templates t ON t.tenant_id = %(t)s AND t.game_id = r.g AND t.name = r.name
LEFT JOIN players pl ON pl.tenant_id = %(t)s AND pl.game_id = r.g AND pl.player_id = r.p
LEFT JOIN notification_preferences pr ON pr.tenant_id = %(t)s AND pr.game_id = r.g AND pr.player_id = r.p
ORDER BY r.i
"""


@dataclass(frozen=True, slots=True)
class Asked:
    """What one request asks to be read for it: its game, player, template and idempotency key."""

    game_id: uuid.UUID
    player_id: str
    template: str
    key: str | None


async def ask_contexts(conn: AsyncConnection, tenant_id: uuid.UUID, asked: Sequence[Asked]) -> AsyncCursor[Any]:
    """Send the reads of what accepting each request needs, all in one statement; `read_contexts`
    reads the answers (in a pipeline, with the statements before and after it in one round trip)."""
    return await conn.execute(_CONTEXTS, {"t": tenant_id, "devices": MAX_DEVICES, "asked": json_rows([
        {"i": i, "g": a.game_id, "p": a.player_id, "name": a.template, "key": a.key} for i, a in enumerate(asked)])})


async def read_contexts(cur: AsyncCursor[Any]) -> list[AcceptContext]:
    """Each request's context, in the order they were asked."""
    return [AcceptContext(existing, existing_hash, Template(*found) if has_template else None,
                          dict(traits) if traits is not None else None,
                          stored_preferences(*preferences) if preferences else Preferences(), dict(devices or {}))
            for existing, existing_hash, found, traits, preferences, devices, has_template in await cur.fetchall()]
