"""The delivery worker against real SMTP servers (aiosmtpd on loopback, STARTTLS and a login) and
the real PostgreSQL: a provider failing three times then succeeding, a provider that is down (the
fallback delivers), a permanent refusal (no retry, a dead letter), a provider that hangs, a server
that drops its sessions (the pool reconnects; every message once), the
request topic with its dead letters, and erasure."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest_asyncio
from prometheus_client import REGISTRY

from gamemetrics.adapters.mail.outbox import OutboxMail
from gamemetrics.adapters.mail.smtp import SmtpMail
from gamemetrics.adapters.mail.twilio import TwilioSms
from gamemetrics.events.dead_letters import read_dead_letter
from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.events.notification_requests import NotificationRequest, request_message
from gamemetrics.ports.bus import NOTIFICATION_REQUESTS, NOTIFICATIONS_DLQ, Record
from gamemetrics.ports.mail import Mail
from gamemetrics.runtime import Platform
from gamemetrics.services.notifier import store
from gamemetrics.services.notifier.accept import Accepted, Acceptor, Refused
from gamemetrics.services.notifier.delivery import Deliverer, Providers
from gamemetrics.services.notifier.eraser import NotificationsEraser
from gamemetrics.services.notifier.preferences import Preferences, QuietHours
from gamemetrics.services.notifier.requests import RequestWorker
from gamemetrics.services.notifier.templates import parse_template
from gamemetrics.services.notifier.unsubscribe import LinkSigner
from gamemetrics.settings import MailSettings, NotifierSettings
from tests.conftest import free_port
from tests.http_providers import TwilioServer
from tests.integration.notifier_fixtures import WELCOME
from tests.smtp_server import SmtpServer, running_smtp_server

PATIENCE_S = 20.0


class MaxJitter(random.Random):
    """Full jitter at its ceiling, so the backoff's total wait is known."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Game:
    platform: Platform
    tenant_id: uuid.UUID
    game_id: uuid.UUID
    acceptor: Acceptor

    async def send(self, player_id: str = "hero", channels: list[str] | None = None, **fields: Any) -> uuid.UUID:
        accepted = await self.acceptor.accept(NotificationRequest(
            self.tenant_id, self.game_id, player_id, "welcome", {"name": "Ada", "level": 5},
            channels or ["email"], **fields))
        return accepted.notification_id

    async def deliveries(self, notification_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
        async with self.platform.pool.connection() as conn:
            cur = await conn.execute("SELECT channel, state, attempts, reason, provider FROM notification_deliveries"
                                     " WHERE notification_id = %s", (notification_id,))
            return {row[0]: row[1:] for row in await cur.fetchall()}

    async def dead_letters(self, group: str = "test-dlq") -> list[Record]:
        consumer = self.platform.bus.consumer(group, [NOTIFICATIONS_DLQ])
        try:
            return await consumer.poll(100, 2.0)
        finally:
            await consumer.close()


def settings(**overrides: Any) -> NotifierSettings:
    return NotifierSettings(**{"notify_backoff_initial_seconds": 0.05, "notify_backoff_cap_seconds": 1.0,
                               "notify_poll_seconds": 0.02, "notify_send_timeout_seconds": 3.0,
                               "notify_max_attempts": 6, "notify_fallback_after": 2, **overrides})


async def settle(game: Game, deliverer: Deliverer, notification_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    """Run delivery rounds until no channel of the notification is queued or sending."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        await deliverer.once()
        rows = await game.deliveries(notification_id)
        if all(row[0] not in ("queued", "sending") for row in rows.values()):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def game(platform: Platform) -> AsyncIterator[Game]:
    tenant, game_id = uuid.uuid4(), uuid.uuid4()
    async with platform.pool.connection() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'studio')", (tenant,))
        await conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'game')", (game_id, tenant))
        for player in ("hero", "other"):
            await conn.execute("INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen, traits)"
                               " VALUES (%s, %s, %s, now(), now(), %s)",
                               (tenant, game_id, player, msgspec.json.encode(
                                   {"email": f"{player}@studio.example", "phone": "+358 40 765 4321"}).decode()))
    async with store.tenant_transaction(platform.pool, tenant) as conn:
        await store.save_template(conn, tenant, game_id, parse_template("welcome", WELCOME))
    links = LinkSigner(b"k" * 32, "https://play.example")
    yield Game(platform, tenant, game_id, Acceptor(platform.pool, links, max_body_bytes=10_000))


def smtp(server: SmtpServer, **overrides: Any) -> Mail:
    return SmtpMail(server.settings(**overrides))


async def test_a_provider_failing_three_times_then_succeeding_delivers_one_message_after_backoff(
        game: Game, smtp_server: SmtpServer) -> None:
    smtp_server.replies = ["451 4.3.0 try again later"] * 3
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"email": [("smtp", smtp(smtp_server))]},
                          settings(notify_fallback_after=10), rng=MaxJitter())
    notification = await game.send()
    started = time.monotonic()
    rows = await settle(game, deliverer, notification)
    assert rows["email"][:2] == ("sent", 4) and rows["email"][3] == "smtp"
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # the three backoffs, at full jitter's ceiling
    assert smtp_server.refused == 3 and len(smtp_server.received) == 1
    message = smtp_server.received[0].message
    assert message["Subject"] == "Welcome, Ada" and smtp_server.received[0].recipients == ["hero@studio.example"]
    assert message["List-Unsubscribe"].startswith("<https://play.example/v1/notifications/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_provider_that_is_down_is_replaced_by_the_fallback(game: Game, tmp_path: Path) -> None:
    with running_smtp_server(tmp_path) as fallback:
        down = SmtpMail(fallback.settings(smtp_port=free_port()))  # nothing listens there
        providers: Providers = {"email": [("primary", down), ("fallback", smtp(fallback))]}
        deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), providers, settings())
        notification = await game.send()
        rows = await settle(game, deliverer, notification)
        assert rows["email"][:2] == ("sent", 3) and rows["email"][3] == "fallback"
        assert len(fallback.received) == 1


async def test_a_permanent_refusal_is_not_retried_and_is_dead_lettered(game: Game, smtp_server: SmtpServer) -> None:
    smtp_server.replies = ["550 5.1.1 no such mailbox"]
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"email": [("smtp", smtp(smtp_server))]},
                          settings())
    notification = await game.send()
    rows = await settle(game, deliverer, notification)
    assert rows["email"][:2] == ("failed", 1) and "550" in rows["email"][2]
    assert smtp_server.refused == 1 and smtp_server.received == []
    [letter] = await game.dead_letters()
    assert letter.key == game.tenant_id.bytes and "550" in letter.headers["error.reason"]
    value = msgspec.json.decode(letter.value)
    assert value["notification_id"] == str(notification) and value["channel"] == "email"


async def test_a_hanging_provider_times_out_and_is_given_up_after_the_last_attempt(game: Game) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # never greets: a hang

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hanging = SmtpMail(MailSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False))
        deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"email": [("smtp", hanging)]},
                              settings(notify_send_timeout_seconds=0.2, notify_max_attempts=2))
        notification = await game.send()
        rows = await settle(game, deliverer, notification)
    finally:
        server.close()
    assert rows["email"][0] == "failed" and rows["email"][1] == 2
    assert "gave up after 2 attempts" in rows["email"][2] and "timed out" in rows["email"][2]
    assert len(await game.dead_letters()) == 1


async def test_requests_from_the_topic_are_accepted_once_and_bad_ones_dead_lettered(game: Game) -> None:
    bus = game.platform.bus
    good = NotificationRequest(game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": 2},
                               ["in_app"])
    unknown = NotificationRequest(game.tenant_id, game.game_id, "hero", "nope", {}, ["in_app"])
    await bus.producer().send(NOTIFICATION_REQUESTS, [request_message(good), request_message(unknown)])
    worker = RequestWorker(bus, game.acceptor, poll_timeout=2.0)
    assert await worker.loop.once() is not None
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT idempotency_key FROM notifications WHERE tenant_id = %s", (game.tenant_id,))
        keys = [row[0] for row in await cur.fetchall()]
    assert len(keys) == 1 and keys[0].startswith(f"{NOTIFICATION_REQUESTS}:")
    [letter] = [read_dead_letter(record) for record in await game.dead_letters()]
    assert letter.reason == "404: no template 'nope' in game " + str(game.game_id)
    assert letter.source.topic == NOTIFICATION_REQUESTS and letter.tenant_id == game.tenant_id
    # Read again from the start (a crash before the commit): still one notification.
    again = RequestWorker(bus, game.acceptor, poll_timeout=2.0)
    async with game.platform.pool.connection() as conn:
        await conn.execute("DELETE FROM bus_offsets WHERE group_id = 'notifier-requests'")
    await again.loop.once()
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM notifications WHERE tenant_id = %s", (game.tenant_id,))
        assert (await cur.fetchone()) == (1,)


async def test_erasure_forgets_the_player_and_keeps_the_counts(game: Game) -> None:
    outbox = OutboxMail(game.platform.pool)
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"in_app": [("outbox", outbox)],
                                                                           "email": [("outbox", outbox)]}, settings())
    mine, theirs = await game.send(channels=["in_app", "email"]), await game.send("other", ["in_app"])
    await settle(game, deliverer, mine)
    await settle(game, deliverer, theirs)
    async with store.tenant_transaction(game.platform.pool, game.tenant_id) as conn:
        await store.set_preferences(conn, game.tenant_id, game.game_id, "hero",
                                    Preferences(categories={"news": {"sms": False}}))
    eraser = NotificationsEraser(game.platform.pool, game.platform.bus)
    request = ErasureRequest(uuid.uuid4(), game.tenant_id, game.game_id, "hero", "test", datetime.now(UTC))
    states = await eraser.erase(request, b"hash")
    assert states["notifications"].state == "erased" and (states["notifications"].rows or 0) >= 5
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT player_id, count(*) FROM notifications GROUP BY player_id ORDER BY 1")
        assert await cur.fetchall() == [("other", 1), (None, 1)]
        cur = await conn.execute("SELECT recipient FROM outbox ORDER BY 1")
        assert await cur.fetchall() == [("other",)]
        cur = await conn.execute("SELECT count(*) FROM notification_preferences")
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT count(*) FROM notification_deliveries WHERE recipient LIKE '%%hero%%'")
        assert await cur.fetchone() == (0,)
    assert (await eraser.erase(request, b"hash"))["notifications"].rows == 0  # idempotent


async def test_sms_through_the_twilio_api_honours_retry_after_and_refusals(game: Game,
                                                                         twilio_server: TwilioServer) -> None:
    sms = TwilioSms(twilio_server.settings())
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"sms": [("twilio", sms)]}, settings())
    twilio_server.replies = [(429, {"Retry-After": "1"}, {"code": 20429, "message": "Too Many Requests"})]
    notification = await game.send(channels=["sms"])
    started = time.monotonic()
    rows = await settle(game, deliverer, notification)
    assert rows["sms"][:2] == ("sent", 2) and time.monotonic() - started >= 1.0  # not before Retry-After
    [message] = twilio_server.received
    assert (message["To"], message["From"], message["Body"]) == ("+358407654321", "+15005550006", "GG Ada")
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT message_id::text FROM notification_deliveries WHERE notification_id = %s",
                                 (notification,))
        assert message["idempotency"] == (await cur.fetchone() or [None])[0]
    twilio_server.replies = [(400, {}, {"code": 21211, "message": "Invalid 'To' Phone Number"})]
    refused = await settle(game, deliverer, await game.send(channels=["sms"]))
    assert refused["sms"][:2] == ("failed", 1) and "21211" in refused["sms"][2]
    wrong = TwilioSms(twilio_server.settings(twilio_auth_token="not-the-token"))
    denied = Deliverer(game.platform.pool, game.platform.bus.producer(), {"sms": [("twilio", wrong)]}, settings())
    unauthorised = await settle(game, denied, await game.send(channels=["sms"]))
    assert unauthorised["sms"][:2] == ("failed", 1) and "401" in unauthorised["sms"][2]
    assert len(twilio_server.received) == 1 and len(await game.dead_letters()) == 2
    await sms.close()
    await wrong.close()


async def test_concurrent_requests_at_the_cap_never_both_go(game: Game) -> None:
    async with store.tenant_transaction(game.platform.pool, game.tenant_id) as conn:
        await store.set_preferences(conn, game.tenant_id, game.game_id, "hero", Preferences(daily_caps={"email": 2}))
    # Every request in its own transaction at once: each reads the count before any has written.
    ids = await asyncio.gather(*(game.send() for _ in range(6)))
    states = sorted([(await game.deliveries(i))["email"][0] for i in ids])
    assert states == ["queued", "queued", *["suppressed"] * 4], states


async def test_retries_that_outlast_the_send_window_are_given_up_and_dead_lettered(
        game: Game, smtp_server: SmtpServer) -> None:
    smtp_server.replies = ["451 4.3.0 try again later"] * 100
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"email": [("smtp", smtp(smtp_server))]},
                          settings(notify_fallback_after=100, notify_max_attempts=100,
                                   notify_backoff_initial_seconds=0.2, notify_backoff_cap_seconds=0.2),
                          rng=MaxJitter())
    notification = await game.send(send_until=datetime.now(UTC) + timedelta(seconds=1))
    rows = await settle(game, deliverer, notification)
    state, attempts, reason, _ = rows["email"]
    assert state == "failed" and "the send window closed" in reason and 2 <= attempts <= 7, rows
    assert smtp_server.received == []
    [letter] = await game.dead_letters()
    assert "send window closed" in letter.headers["error.reason"]


async def test_a_topic_batch_is_accepted_across_players_at_once_and_in_order_for_each(game: Game) -> None:
    async with store.tenant_transaction(game.platform.pool, game.tenant_id) as conn:
        await store.set_preferences(conn, game.tenant_id, game.game_id, "hero", Preferences(daily_caps={"email": 2}))
    requests = [NotificationRequest(game.tenant_id, game.game_id, player, "welcome", {"name": "Ada", "level": n},
                                    ["email"], idempotency_key=f"{player}-{n}")
                for n in range(4) for player in ("hero", "other")]
    await game.platform.bus.producer().send(NOTIFICATION_REQUESTS, [request_message(r) for r in requests])
    worker = RequestWorker(game.platform.bus, game.acceptor, poll_timeout=2.0, concurrency=4)
    assert await worker.loop.once() is not None
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT n.idempotency_key, d.state FROM notifications n JOIN notification_deliveries d"
                                 " USING (tenant_id, notification_id) WHERE n.tenant_id = %s", (game.tenant_id,))
        states = dict(await cur.fetchall())
    # The cap takes the player's first two requests, in the topic's order; the other player has none.
    assert [states[f"hero-{n}"] for n in range(4)] == ["queued", "queued", "suppressed", "suppressed"]
    assert [states[f"other-{n}"] for n in range(4)] == ["queued"] * 4


async def test_requests_written_together_are_each_answered_as_if_alone(game: Game) -> None:
    def asked(player: str, template: str = "welcome", key: str | None = None) -> NotificationRequest:
        return NotificationRequest(game.tenant_id, game.game_id, player, template, {"name": "Ada", "level": 1},
                                   ["email"], idempotency_key=key)

    twice = asked("hero", key="same-key")
    # In flight at once, so they share a batch: one transaction for all of them.
    first, again, refused, other = await asyncio.gather(
        game.acceptor.accept(twice), game.acceptor.accept(twice), game.acceptor.accept(asked("hero", "nope")),
        game.acceptor.accept(asked("other")), return_exceptions=True)
    assert isinstance(first, Accepted) and isinstance(again, Accepted) and isinstance(other, Accepted)
    assert first.notification_id == again.notification_id and {first.created, again.created} == {True, False}
    assert isinstance(refused, Refused) and refused.status == 404 and "nope" in refused.reason
    assert other.created and other.notification_id != first.notification_id
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM notifications WHERE tenant_id = %s", (game.tenant_id,))
        assert await cur.fetchone() == (2,)


async def test_one_key_asking_two_things_in_one_batch_is_refused_for_the_second(game: Game) -> None:
    def asked(level: int) -> NotificationRequest:
        return NotificationRequest(game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": level},
                                   ["email"], idempotency_key="one-key")

    # Neither has been written when the batch reads: the write keeps the first, the second is told why.
    first, second = await asyncio.gather(game.acceptor.accept(asked(1)), game.acceptor.accept(asked(2)),
                                         return_exceptions=True)
    assert isinstance(first, Accepted) and first.created
    assert isinstance(second, Refused) and second.status == 422 and "Idempotency-Key" in second.reason
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM notification_deliveries WHERE tenant_id = %s", (game.tenant_id,))
        assert await cur.fetchone() == (1,)


async def test_every_request_is_answered_while_batches_come_and_go(game: Game) -> None:
    async def client(n: int) -> list[Accepted]:
        return [await game.acceptor.accept(NotificationRequest(
            game.tenant_id, game.game_id, "other", "welcome", {"name": "Ada", "level": i}, ["in_app"],
            idempotency_key=f"client-{n}-{i}")) for i in range(8)]

    # Clients that send again as soon as they are answered, so batches start and finish all the
    # while: every request must be answered (a request left with no writer would hang here).
    answered = await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(12))), timeout=60)
    assert len({a.notification_id for answers in answered for a in answers}) == 12 * 8


async def test_the_smtp_pool_reconnects_after_the_server_drops_its_sessions_and_sends_each_message_once(
        game: Game, smtp_server: SmtpServer) -> None:
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(),
                          {"email": [("smtp", smtp(smtp_server, smtp_connections=2))]},
                          settings(notify_batch_size=4))
    sent = [await game.send(idempotency_key=f"drop-{n}") for n in range(4)]
    assert await deliverer.once() == 4 and len(smtp_server.received) == 4
    before = set(smtp_server.peers)
    # The server goes down and comes back: the pool's idle sessions are dead, and the next
    # messages must go out on new ones.
    await asyncio.to_thread(smtp_server.restart)
    worker = asyncio.create_task(deliverer.run())
    try:
        sent += [await game.send(idempotency_key=f"drop-{n}") for n in range(4, 12)]
        deadline = time.monotonic() + PATIENCE_S
        while len(smtp_server.received) < 8:
            assert time.monotonic() < deadline, smtp_server.received
            await asyncio.sleep(0.01)
        # Again while the worker is sending: whatever was cut off is sent again, once.
        await asyncio.to_thread(smtp_server.restart)
        sent += [await game.send(idempotency_key=f"drop-{n}") for n in range(12, 20)]
        while (states := [(await game.deliveries(n))["email"][0] for n in sent]) != ["sent"] * 20:
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT message_id FROM notification_deliveries WHERE tenant_id = %s",
                                 (game.tenant_id,))
        expected = sorted(f"<{row[0]}@gamemetrics.test>" for row in await cur.fetchall())
    received = sorted(str(r.message["Message-ID"]) for r in smtp_server.received)
    assert received == expected and len(expected) == 20, "every message arrived, and none twice"
    assert smtp_server.peers - before, "the messages after the restart went out on new sessions"
    # The sessions the server dropped while idle were replaced within the send: no attempt failed.
    assert [(await game.deliveries(n))["email"][1] for n in sent[4:8]] == [1] * 4


class RefusingOutbox(OutboxMail):
    """The outbox, with a database that refuses what it is asked to keep (a statement that fails)."""

    async def keep(self, conn: Any, messages: Any) -> None:
        await conn.execute("SELECT 1 / 0")


async def test_a_keep_that_fails_is_retried_like_any_failed_send_and_the_claim_still_counts(game: Game) -> None:
    notification = await game.send(channels=["in_app"])
    refusing = RefusingOutbox(game.platform.pool)
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(), {"in_app": [("outbox", refusing)]},
                          settings(notify_backoff_initial_seconds=60.0, notify_backoff_cap_seconds=60.0),
                          rng=MaxJitter())
    # The claim's transaction fails with the keep; the round is done apart: claimed, the outbox's
    # error recorded, the delivery queued for a later attempt.
    assert await deliverer.once() == 1
    state, attempts, reason, _ = (await game.deliveries(notification))["in_app"]
    assert (state, attempts) == ("queued", 1) and "could not keep message" in reason and "division" in reason
    working = Deliverer(game.platform.pool, game.platform.bus.producer(),
                        {"in_app": [("outbox", OutboxMail(game.platform.pool))]}, settings())
    assert await working.once() == 0, "not due before its backoff"
    async with game.platform.pool.connection() as conn:
        await conn.execute("UPDATE notification_deliveries SET next_attempt_at = now() WHERE notification_id = %s",
                           (notification,))
    assert await working.once() == 1
    assert (await game.deliveries(notification))["in_app"][:2] == ("sent", 2)


def attempts_counted(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("gamemetrics_notification_attempts_total",
                                     {"channel": channel, "outcome": outcome}) or 0.0


async def test_a_keep_that_fails_counts_its_retry_once_and_no_send(game: Game) -> None:
    await game.send(channels=["in_app"])
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(),
                          {"in_app": [("outbox", RefusingOutbox(game.platform.pool))]},
                          settings(notify_backoff_initial_seconds=60.0, notify_backoff_cap_seconds=60.0))
    sent, retried = attempts_counted("in_app", "sent"), attempts_counted("in_app", "retry")
    assert await deliverer.once() == 1
    # The combined transaction that failed counted nothing; the round done apart counted its retry.
    assert (attempts_counted("in_app", "sent"), attempts_counted("in_app", "retry")) == (sent, retried + 1)


async def outbox_rows(game: Game) -> list[tuple[Any, ...]]:
    async with game.platform.pool.connection() as conn:
        cur = await conn.execute("SELECT o.message_id, o.recipient, o.subject, d.notification_id FROM outbox o"
                                 " LEFT JOIN notification_deliveries d USING (tenant_id, message_id)"
                                 " WHERE o.tenant_id = %s ORDER BY o.created_at", (game.tenant_id,))
        return await cur.fetchall()


async def test_a_message_due_now_on_a_kept_channel_is_kept_as_it_is_accepted(game: Game,
                                                                              smtp_server: SmtpServer) -> None:
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(),
                          {"in_app": [("outbox", OutboxMail(game.platform.pool))],
                           "email": [("smtp", smtp(smtp_server))]}, settings())
    links = LinkSigner(b"k" * 32, "https://play.example")
    acceptor = Acceptor(game.platform.pool, links, max_body_bytes=10_000, keeper=deliverer.keeper)
    sent = attempts_counted("in_app", "sent")
    request = NotificationRequest(game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": 5},
                                  ["in_app", "email"], idempotency_key="kept-once")
    first = await acceptor.accept(request)
    # No delivery round has run: the in-app record is sent, its message kept once, under its own id;
    # the email waits for the delivery worker.
    rows = await game.deliveries(first.notification_id)
    assert rows["in_app"] == ("sent", 1, None, "outbox") and rows["email"][:2] == ("queued", 0)
    [(message_id, recipient, subject, of)] = await outbox_rows(game)
    assert (recipient, subject, of) == ("hero", "Level 5", first.notification_id) and message_id
    assert attempts_counted("in_app", "sent") == sent + 1
    assert await acceptor.accept(request) == Accepted(first.notification_id, created=False)
    assert len(await outbox_rows(game)) == 1
    assert await deliverer.once() == 1 and len(smtp_server.received) == 1  # only the email was left to send
    # Not due now: a send_at ahead, or the player's quiet hours; those wait for the worker.
    later = await acceptor.accept(NotificationRequest(
        game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": 6}, ["in_app"],
        send_at=datetime.now(UTC) + timedelta(hours=1)))
    assert (await game.deliveries(later.notification_id))["in_app"][:2] == ("queued", 0)
    now = datetime.now(UTC)
    async with store.tenant_transaction(game.platform.pool, game.tenant_id) as conn:
        await store.set_preferences(conn, game.tenant_id, game.game_id, "other", Preferences(
            quiet_hours=QuietHours((now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time(), "UTC")))
    quiet = await acceptor.accept(NotificationRequest(
        game.tenant_id, game.game_id, "other", "welcome", {"name": "Ada", "level": 7}, ["in_app"]))
    assert (await game.deliveries(quiet.notification_id))["in_app"][:2] == ("queued", 0)
    assert len(await outbox_rows(game)) == 1


async def test_two_acceptors_racing_on_one_key_keep_one_message(game: Game) -> None:
    """Two notifier replicas given the same key at once: one writes the notification; the other's
    insert finds the key taken, and its message must not be kept."""
    deliverer = Deliverer(game.platform.pool, game.platform.bus.producer(),
                          {"in_app": [("outbox", OutboxMail(game.platform.pool))]}, settings())
    links = LinkSigner(b"k" * 32, "https://play.example")
    replicas = [Acceptor(game.platform.pool, links, max_body_bytes=10_000, keeper=deliverer.keeper)
                for _ in range(2)]
    keys = [f"race-{n}" for n in range(30)]
    answers = await asyncio.gather(*(replica.accept(NotificationRequest(
        game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": 1}, ["in_app"], idempotency_key=key))
        for key in keys for replica in replicas))
    assert sum(a.created for a in answers) == len(keys)
    for mine, theirs in zip(answers[::2], answers[1::2], strict=True):
        assert mine.notification_id == theirs.notification_id
    kept = await outbox_rows(game)
    assert len(kept) == len(keys) and all(of is not None for *_, of in kept)


async def test_a_keep_that_fails_as_it_is_accepted_leaves_the_message_to_the_delivery_worker(game: Game) -> None:
    refusing = Deliverer(game.platform.pool, game.platform.bus.producer(),
                         {"in_app": [("outbox", RefusingOutbox(game.platform.pool))]}, settings())
    acceptor = Acceptor(game.platform.pool, LinkSigner(b"k" * 32, "https://play.example"), max_body_bytes=10_000,
                        keeper=refusing.keeper)
    answers = await asyncio.gather(*(acceptor.accept(NotificationRequest(
        game.tenant_id, game.game_id, "hero", "welcome", {"name": "Ada", "level": n}, ["in_app"]))
        for n in range(5)))
    assert all(a.created for a in answers)
    assert [(await game.deliveries(a.notification_id))["in_app"][:2] for a in answers] == [("queued", 0)] * 5
    working = Deliverer(game.platform.pool, game.platform.bus.producer(),
                        {"in_app": [("outbox", OutboxMail(game.platform.pool))]}, settings())
    assert await working.once() == 5
    assert [(await game.deliveries(a.notification_id))["in_app"][:2] for a in answers] == [("sent", 1)] * 5
    assert len(await outbox_rows(game)) == 5
