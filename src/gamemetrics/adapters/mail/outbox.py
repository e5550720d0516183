"""Messages kept in the `outbox` table of the platform's PostgreSQL, for the dashboard to show,
when no real provider is configured. Every channel is accepted; a batch is kept in one
transaction, one statement per tenant."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gamemetrics.ports.mail import CHANNELS, Channel, MailError, OutgoingMessage

_JSON = msgspec.json.Encoder()


class OutboxMail:
    """Inserts each message under its tenant, once per message id."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @property
    def channels(self) -> frozenset[Channel]:
        return CHANNELS

    async def send(self, message: OutgoingMessage) -> None:
        failed = (await self.send_batch([message]))[0]
        if failed is not None:
            raise failed

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[MailError | None]:
        """Keep every message, each tenant's under its own name; all kept or none (the error for each)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await self.keep(conn, messages)
        except psycopg.Error as exc:
            return [MailError(f"could not keep message {m.message_id} of tenant {m.tenant_id} in the outbox: {exc}")
                    for m in messages]
        return [None] * len(messages)

    async def keep(self, conn: AsyncConnection[Any], messages: Sequence[OutgoingMessage]) -> None:
        """Keep every message in `conn`'s transaction, one statement per tenant."""
        by_tenant = sorted(messages, key=lambda m: m.tenant_id.bytes)
        for tenant_id, group in groupby(by_tenant, key=lambda m: m.tenant_id):
            mine = list(group)
            # The transaction names the messages' tenant, so row-level security lets it write
            # that tenant's rows only, whatever role the service connects as.
            await conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)", (str(tenant_id),))
            # One JSON parameter: adapting as many arrays of each column costs far more.
            await conn.execute(
                "INSERT INTO outbox (tenant_id, message_id, channel, recipient, player_id, subject, body, headers)"
                " SELECT %s, * FROM jsonb_to_recordset(%s) AS m(message_id uuid, channel text, recipient text,"
                " player_id text, subject text, body text, headers jsonb)"
                " ON CONFLICT (tenant_id, message_id) DO NOTHING",
                (tenant_id, Jsonb([{"message_id": m.message_id, "channel": m.channel, "recipient": m.recipient,
                                    "player_id": m.player_id, "subject": m.subject, "body": m.body,
                                    "headers": dict(m.headers)} for m in mine], dumps=_JSON.encode)),
            )
        # The caller's transaction goes on as it was: naming no tenant.
        await conn.execute("SELECT set_config('gamemetrics.tenant_id', '', true)")


async def recent_outbox(pool: AsyncConnectionPool, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages of every tenant, oldest first (read as a trusted worker)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM (SELECT created_at, tenant_id, channel, recipient, subject, body, message_id FROM outbox"
            " ORDER BY created_at DESC, message_id LIMIT %s) newest ORDER BY created_at, message_id", (limit,))
        names = [column.name for column in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
