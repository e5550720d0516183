"""Messages kept in the `outbox` table of the platform's PostgreSQL, for the dashboard to show,
when no real provider is configured. Every channel is accepted."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gamemetrics.ports.mail import CHANNELS, Channel, MailError, OutgoingMessage


class OutboxMail:
    """Inserts each message under its tenant, once per message id."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @property
    def channels(self) -> frozenset[Channel]:
        return CHANNELS

    async def send(self, message: OutgoingMessage) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                # The transaction names the message's tenant, so row-level security lets it write
                # that tenant's rows only, whatever role the service connects as.
                await conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)",
                                   (str(message.tenant_id),))
                await conn.execute(
                    "INSERT INTO outbox (tenant_id, message_id, channel, recipient, player_id, subject, body,"
                    " headers) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (tenant_id, message_id) DO NOTHING",
                    (message.tenant_id, message.message_id, message.channel, message.recipient,
                     message.player_id, message.subject, message.body, Jsonb(dict(message.headers))),
                )
        except psycopg.Error as exc:
            raise MailError(f"could not keep message {message.message_id} of tenant {message.tenant_id}"
                            f" in the outbox: {exc}") from exc


async def recent_outbox(pool: AsyncConnectionPool, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages of every tenant, oldest first (read as a trusted worker)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM (SELECT created_at, tenant_id, channel, recipient, subject, body, message_id FROM outbox"
            " ORDER BY created_at DESC, message_id LIMIT %s) newest ORDER BY created_at, message_id", (limit,))
        names = [column.name for column in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
