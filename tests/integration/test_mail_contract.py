"""The Mail port's contract, on both adapters: the outbox table in the real PostgreSQL of the
fixtures, and SMTP to a real aiosmtpd server on loopback that requires STARTTLS and a login."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from gamemetrics.adapters.mail import make_mail
from gamemetrics.adapters.mail.outbox import OutboxMail
from gamemetrics.adapters.mail.smtp import SmtpMail
from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.ports.mail import Mail, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings
from tests.smtp_server import SmtpServer


@dataclass
class Delivered:
    """A message as the provider's far side saw it."""

    recipient: str
    subject: str
    body: str
    message_id: str
    headers: dict[str, str]


@dataclass
class Provider:
    mail: Mail
    delivered: Callable[[], Awaitable[list[Delivered]]]


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(database_url, max_size=2, name="mail-test")
    yield pool
    await pool.close()


async def _tenant(pool: AsyncConnectionPool) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant_id, "studio"))
    return tenant_id


async def _outbox_rows(pool: AsyncConnectionPool, tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """The outbox as the dashboard reads it: as the analytics role, under row-level security."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('role', 'gamemetrics_app', true),"
                           " set_config('gamemetrics.tenant_id', %s, true)", (str(tenant_id),))
        cur = await conn.execute("SELECT recipient, subject, body, message_id, headers, channel, player_id"
                                 " FROM outbox ORDER BY created_at, message_id")
        return await cur.fetchall()


@pytest_asyncio.fixture(params=["outbox", "smtp"])
async def provider(request: pytest.FixtureRequest, pool: AsyncConnectionPool, tenant: uuid.UUID) -> Provider:
    if request.param == "outbox":
        async def in_outbox() -> list[Delivered]:
            return [Delivered(r[0], r[1], r[2], str(r[3]), r[4]) for r in await _outbox_rows(pool, tenant)]

        return Provider(make_mail(MailSettings(), pool), in_outbox)
    server: SmtpServer = request.getfixturevalue("smtp_server")

    async def received() -> list[Delivered]:
        return [Delivered(", ".join(r.recipients), str(r.message["Subject"]), r.message.get_content().rstrip("\n"),
                          str(r.message["Message-ID"]).strip("<>").split("@")[0],
                          {k: str(v) for k, v in r.message.items()}) for r in server.received]

    return Provider(make_mail(server.settings(), pool), received)


@pytest_asyncio.fixture
async def tenant(pool: AsyncConnectionPool) -> uuid.UUID:
    return await _tenant(pool)


def _welcome(tenant_id: uuid.UUID, **overrides: Any) -> OutgoingMessage:
    return OutgoingMessage(**{
        "tenant_id": tenant_id, "channel": "email", "recipient": "player@example.com",
        "subject": "Your weekly quest", "body": "Three new quests are waiting.\nSee you in game!",
        "player_id": "p-42", "headers": {"X-GameMetrics-Campaign": "weekly"}, **overrides,
    })


async def test_a_sent_message_arrives_whole(provider: Provider, tenant: uuid.UUID) -> None:
    message = _welcome(tenant)
    assert "email" in provider.mail.channels
    await provider.mail.send(message)
    [delivered] = await provider.delivered()
    assert delivered.recipient == "player@example.com"
    assert delivered.subject == "Your weekly quest"
    assert delivered.body == "Three new quests are waiting.\nSee you in game!"
    assert delivered.message_id == str(message.message_id)
    assert delivered.headers["X-GameMetrics-Campaign"] == "weekly"


async def test_messages_arrive_in_order(provider: Provider, tenant: uuid.UUID) -> None:
    for n in range(3):
        await provider.mail.send(_welcome(tenant, subject=f"quest {n}"))
    assert [d.subject for d in await provider.delivered()] == ["quest 0", "quest 1", "quest 2"]


async def test_outbox_keeps_every_channel_once_per_message_id(pool: AsyncConnectionPool, tenant: uuid.UUID) -> None:
    outbox = OutboxMail(pool)
    push = _welcome(tenant, channel="push", recipient="device-token-1", subject="")
    await outbox.send(push)
    await outbox.send(push)  # a retried send
    await outbox.send(_welcome(tenant, channel="in_app", recipient="p-42"))
    rows = await _outbox_rows(pool, tenant)
    assert [(r[5], r[0], r[6]) for r in rows] == [("push", "device-token-1", "p-42"), ("in_app", "p-42", "p-42")]


async def test_outbox_rows_are_the_tenants_own(pool: AsyncConnectionPool, tenant: uuid.UUID) -> None:
    other = await _tenant(pool)
    await OutboxMail(pool).send(_welcome(tenant))
    assert len(await _outbox_rows(pool, tenant)) == 1
    assert await _outbox_rows(pool, other) == []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('role', 'gamemetrics_app', true)")
        cur = await conn.execute("SELECT count(*) FROM outbox")
        assert await cur.fetchone() == (0,), "no tenant named, no rows"


async def test_outbox_failure_is_a_mail_error(pool: AsyncConnectionPool) -> None:
    with pytest.raises(MailError, match="outbox"):
        await OutboxMail(pool).send(_welcome(uuid.uuid4()))  # no such tenant


async def test_smtp_carries_email_only(smtp_server: SmtpServer, tenant: uuid.UUID) -> None:
    mail = SmtpMail(smtp_server.settings())
    assert mail.channels == frozenset({"email"})
    with pytest.raises(UnsupportedChannel):
        await mail.send(_welcome(tenant, channel="sms", recipient="+4912345"))
    assert smtp_server.received == []


async def test_smtp_envelope_and_headers(smtp_server: SmtpServer, tenant: uuid.UUID) -> None:
    await SmtpMail(smtp_server.settings()).send(_welcome(tenant))
    [received] = smtp_server.received
    assert received.sender == "noreply@gamemetrics.test"
    assert received.recipients == ["player@example.com"]
    assert received.message["From"] == "GameMetrics <noreply@gamemetrics.test>"
    assert received.message["To"] == "player@example.com"
    assert received.message["Date"]
    assert str(received.message["Message-ID"]).endswith("@gamemetrics.test>")


async def test_smtp_sessions_are_pooled_and_carry_many_messages(smtp_server: SmtpServer, tenant: uuid.UUID) -> None:
    mail = SmtpMail(smtp_server.settings(smtp_connections=2))
    await asyncio.gather(*(mail.send(_welcome(tenant, subject=f"quest {n}")) for n in range(10)))
    assert sorted(r.message["Subject"] for r in smtp_server.received) == sorted(f"quest {n}" for n in range(10))
    assert 1 <= len(smtp_server.peers) <= 2, "ten messages over at most two STARTTLS-and-login sessions"


async def test_a_refused_message_leaves_the_pool_sending(smtp_server: SmtpServer, tenant: uuid.UUID) -> None:
    mail = SmtpMail(smtp_server.settings(smtp_connections=1))
    await mail.send(_welcome(tenant, subject="first"))
    smtp_server.replies.append("550 5.7.1 not this one")
    with pytest.raises(Rejected):
        await mail.send(_welcome(tenant, subject="refused"))
    await mail.send(_welcome(tenant, subject="after"))
    assert [r.message["Subject"] for r in smtp_server.received] == ["first", "after"]
    assert len(smtp_server.peers) == 2, "the session that met the refusal was closed, a fresh one took over"


async def test_a_header_value_cannot_add_a_header(smtp_server: SmtpServer, tenant: uuid.UUID) -> None:
    await SmtpMail(smtp_server.settings()).send(_welcome(tenant, subject="Hi\r\nBcc: victim@example.com"))
    [received] = smtp_server.received
    assert received.message["Subject"] == "Hi Bcc: victim@example.com" and received.message["Bcc"] is None
    assert received.recipients == ["player@example.com"]


async def test_outbox_batch_keeps_each_tenants_rows_under_it(pool: AsyncConnectionPool, tenant: uuid.UUID) -> None:
    other = await _tenant(pool)
    answers = await OutboxMail(pool).send_batch([_welcome(tenant, subject="a"), _welcome(other, subject="b"),
                                                 _welcome(tenant, subject="c")])
    assert answers == [None, None, None]
    assert sorted(r[1] for r in await _outbox_rows(pool, tenant)) == ["a", "c"]
    assert [r[1] for r in await _outbox_rows(pool, other)] == ["b"]
    failed = await OutboxMail(pool).send_batch([_welcome(tenant, subject="d"), _welcome(uuid.uuid4())])
    assert all(isinstance(answer, MailError) for answer in failed), "one transaction: none kept"
    assert sorted(r[1] for r in await _outbox_rows(pool, tenant)) == ["a", "c"]


@pytest.mark.parametrize("overrides", [
    {"smtp_password": SecretStr("wrong")},
    {"smtp_starttls": False},  # the server requires STARTTLS before anything else
    {"smtp_ca_file": None},  # the server's certificate is not signed by a CA the system trusts
], ids=["wrong-password", "no-starttls", "untrusted-certificate"])
async def test_smtp_refusals_are_mail_errors(smtp_server: SmtpServer, tenant: uuid.UUID,
                                             overrides: dict[str, Any]) -> None:
    with pytest.raises(MailError):
        await SmtpMail(smtp_server.settings(**overrides)).send(_welcome(tenant))
    assert smtp_server.received == []
