"""The delivery worker: claims due delivery records, hands each to its channel's provider, and
records what happened.

A message the platform's own database keeps (the outbox: the in-app inbox, and every channel
with no provider) is written, and its record marked sent, in the transaction that claims it: the
three commit together or not at all. For every other provider, a claim is committed (state
`sending`, one more attempt, a lease) before the provider is called,
so a notifier killed mid-send leaves a record that another (or its restart) claims again once the
lease runs out and sends under the same message id, which the outbox and providers keep to one
message. Transient failures are retried with exponential backoff and full jitter (never sooner
than a provider's Retry-After); after `notify_fallback_after` failed attempts a channel's second
provider takes over; a permanent refusal, the last allowed attempt failing, or the notification's
send window (`send_until`) closing gives the delivery up: `failed` with the reason, and a letter on
`notifications.dlq`. A refusal that says the device is gone (an unregistered push token, an expired
Web Push subscription) also removes that device from the player's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.observability import metrics
from gamemetrics.ports.bus import NOTIFICATIONS_DLQ, Message, Producer
from gamemetrics.ports.mail import BatchMail, Channel, KeptMail, Mail, MailError, OutgoingMessage, Rejected, Routing
from gamemetrics.services.notifier.store import json_rows
from gamemetrics.settings import NotifierSettings

log = structlog.get_logger("notifier")
REASON = "error.reason"
_ATTEMPT_OUTCOME = {"sent": "sent", "queued": "retry", "failed": "failed"}
"""An outcome's state as `gamemetrics_notification_attempts_total` names it."""

Providers = Mapping[str, Sequence[tuple[str, Mail]]]
"""Per channel, its providers in order (named for the record): the first, then its fallback."""
_Share = tuple[str, Mail, list["Claimed"]]
"""A provider's name, the adapter, and the claimed deliveries it is to take."""

_CLAIM = """
UPDATE notification_deliveries d SET state = 'sending', attempts = d.attempts + 1,
       next_attempt_at = now() + make_interval(secs => %(lease)s), updated_at = now()
FROM (SELECT tenant_id, notification_id, channel, seq FROM notification_deliveries
      WHERE state IN ('queued', 'sending') AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due, notifications n
WHERE (d.tenant_id, d.notification_id, d.channel, d.seq) = (due.tenant_id, due.notification_id, due.channel, due.seq)
  AND (n.tenant_id, n.notification_id) = (d.tenant_id, d.notification_id)
RETURNING d.tenant_id, d.notification_id, d.channel, d.attempts, d.message_id, d.recipient, d.subject, d.body,
          d.headers, n.game_id, n.player_id, d.seq, n.send_until
"""

_RECORD = """
UPDATE notification_deliveries d SET state = o.state, reason = o.reason, provider = o.provider, updated_at = now(),
       next_attempt_at = now() + make_interval(secs => o.delay),
       sent_at = CASE WHEN o.state = 'sent' THEN now() END
FROM jsonb_to_recordset(%s) AS o(state text, reason text, provider text, delay float8, tenant_id uuid,
                                 notification_id uuid, channel text, seq int, attempts int)
WHERE (d.tenant_id, d.notification_id, d.channel, d.seq, d.attempts)
    = (o.tenant_id, o.notification_id, o.channel, o.seq, o.attempts)
"""

_FORGET = """
DELETE FROM notification_devices v USING unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[])
     AS g(tenant_id, game_id, kind, address)
WHERE (v.tenant_id, v.game_id, v.kind, v.address) = (g.tenant_id, g.game_id, g.kind, g.address)
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery record this worker holds the lease of."""

    tenant_id: uuid.UUID
    notification_id: uuid.UUID
    channel: str
    attempts: int
    message_id: uuid.UUID
    recipient: str
    subject: str
    body: str
    headers: dict[str, str]
    game_id: uuid.UUID
    player_id: str | None
    seq: int = 0
    send_until: datetime | None = None

    def message(self) -> OutgoingMessage:
        return OutgoingMessage(self.tenant_id, self.channel, self.recipient, self.body,  # type: ignore[arg-type]
                               subject=self.subject, player_id=self.player_id, headers=self.headers,
                               message_id=self.message_id)


def retry_delay(attempts: int, initial: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2^(attempts-1))], never below the provider's Retry-After."""
    ceiling = min(cap, initial * 2.0 ** min(max(attempts - 1, 0), 64))
    return max(rng.uniform(0.0, ceiling), retry_after or 0.0)


class Deliverer:
    """Takes due deliveries through their providers, a batch at a time: one statement claims the
    batch, the outbox's share is kept in the same transaction, each other provider gets its share
    at once (in one exchange when it takes batches), and one statement records their outcomes."""

    def __init__(self, pool: AsyncConnectionPool, producer: Producer, providers: Providers,
                 settings: NotifierSettings, *, rng: random.Random | None = None, rounds: int = 4) -> None:
        self._pool = pool
        self._producer = producer
        self._providers = providers
        self._settings = settings
        self._rng = rng or random.Random()
        self._due = asyncio.Event()
        self._rounds = rounds

    def wake(self) -> None:
        """Start the next round now (new deliveries are due), rather than after the poll interval."""
        self._due.set()

    async def run(self) -> None:
        """Deliver until cancelled, `rounds` rounds at once: while one waits on the database or a
        provider, another claims (SKIP LOCKED keeps their claims apart)."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._rounds):
                group.create_task(self._rounds_in_turn())

    async def _rounds_in_turn(self) -> None:
        """Deliver until cancelled; when nothing is due, wait for a wake-up or the poll interval."""
        while True:
            try:
                handled = await self.once()
            except Exception:  # the database away: the records wait, nothing is lost
                log.warning("delivery round failed; trying again", exc_info=True)
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), self._settings.notify_poll_seconds)
                self._due.clear()

    async def once(self) -> int:
        """Claim up to a batch of due deliveries, send each, record the outcomes; how many.

        What a provider in this database keeps (the outbox: in-app, and every channel without a
        provider) is kept and recorded in the claim's own transaction, so the claim, the message
        and its outcome commit at once; the rest is sent after the claim commits and recorded after.
        Should that transaction fail, the round is done again the way every other provider's is."""
        settings = self._settings
        params = {"lease": settings.notify_lease_seconds, "limit": settings.notify_batch_size}
        try:
            async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                cur = await conn.execute(_CLAIM, params)
                claimed = [Claimed(*row) for row in await cur.fetchall()]
                settled, kept, shares = self._route(claimed, keep_here=True)
                for name, mail, share in kept:
                    await cast("KeptMail", mail).keep(conn, [one.message() for one in share])
                    settled.extend(self._outcome(one, name, None) for one in share)
                await self._write(conn, settled)
        except psycopg.Error:
            log.warning("claiming and keeping in one transaction failed; this round apart", exc_info=True)
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_CLAIM, params)
                claimed = [Claimed(*row) for row in await cur.fetchall()]
            settled, _, shares = self._route(claimed, keep_here=False)
            await self._record(settled)
        else:
            await self._publish(settled)
        if shares:
            await self._record(await self._deliver_all(shares))
        return len(claimed)

    def _route(self, claimed: Sequence[Claimed], *,
               keep_here: bool) -> tuple[list[Outcome], list[_Share], list[_Share]]:
        """What is settled without a provider (its window closed, no provider), the shares to keep
        in this database (`keep_here`), and those to send, each provider's share apart."""
        settled: list[Outcome] = []
        kept: dict[int, _Share] = {}
        shares: dict[int, _Share] = {}
        now = datetime.now(UTC)
        for one in claimed:
            if one.send_until is not None and one.send_until <= now:
                settled.append(self._given_up(one, f"the send window closed at {one.send_until.isoformat()}"
                                                   " before it could be sent", None))
                continue
            chosen = self._provider(one)
            if chosen is None:
                settled.append(self._given_up(one, f"no provider carries the {one.channel} channel", None))
                continue
            name, provider = chosen
            # Each channel's adapter gets its own share: the outbox takes it in one statement, and a
            # slow channel does not hold up (or time out) another's sends.
            mail = _adapter(provider, one.channel)
            into = kept if keep_here and isinstance(mail, KeptMail) else shares
            into.setdefault(id(mail), (name, mail, []))[2].append(one)
        return settled, list(kept.values()), list(shares.values())

    async def _deliver_all(self, shares: Sequence[_Share]) -> list[Outcome]:
        """Each provider's share sent at once; what is to be recorded of each delivery."""
        answers = await asyncio.gather(*(self._send(mail, share) for _, mail, share in shares))
        return [self._outcome(one, name, error) for (name, _, share), errors in zip(shares, answers, strict=True)
                for one, error in zip(share, errors, strict=True)]

    async def _send(self, provider: Mail, share: Sequence[Claimed]) -> list[BaseException | None]:
        """Hand `share` to the provider; for each delivery, None when it took the message, else the error."""
        timeout = self._settings.notify_send_timeout_seconds
        messages = [one.message() for one in share]
        if isinstance(provider, BatchMail):
            try:
                return list(await asyncio.wait_for(provider.send_batch(messages), timeout))
            except Exception as exc:  # a hang or a crash is the whole exchange's: each delivery retried
                return [exc] * len(share)
        answers = await asyncio.gather(*(asyncio.wait_for(provider.send(m), timeout) for m in messages),
                                       return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, Exception):
                raise answer  # a cancellation is the worker's, not the delivery's
        return [answer if isinstance(answer, BaseException) else None for answer in answers]

    def keeper(self, channel: str) -> tuple[str, KeptMail] | None:
        """The provider (and its name) that keeps `channel`'s first attempt in this database, when
        that is where it goes: the acceptor then keeps a message due at once in its own transaction."""
        chain = self._providers.get(channel, ())
        if not chain:
            return None
        name, provider = chain[0]
        mail = _adapter(provider, channel)
        return (name, mail) if isinstance(mail, KeptMail) else None

    def _provider(self, claimed: Claimed) -> tuple[str, Mail] | None:
        chain = self._providers.get(claimed.channel, ())
        if not chain:
            return None
        use_fallback = claimed.attempts > self._settings.notify_fallback_after and len(chain) > 1
        return chain[1] if use_fallback else chain[0]

    def _outcome(self, claimed: Claimed, name: str, error: BaseException | None) -> Outcome:
        """What to record of a delivery its provider `name` answered `error` to (None: it took it)."""
        settings = self._settings
        if error is None:
            return Outcome(claimed, "sent", None, name)
        if isinstance(error, Rejected):
            # An unregistered token or expired subscription is no longer a contact point.
            return self._given_up(claimed, f"{name} refused it: {error}", name, forget=error.recipient_gone)
        if isinstance(error, TimeoutError):
            reason = f"{name}: timed out after {settings.notify_send_timeout_seconds}s"
        elif isinstance(error, (MailError, OSError)):
            reason = f"{name}: {error}"
        else:  # a provider's bug: logged with its traceback, and retried like a transient failure
            log.error("provider raised", provider=name, notification_id=str(claimed.notification_id),
                      exc_info=error)
            reason = f"{name}: {type(error).__name__}: {error}"
        if claimed.attempts >= settings.notify_max_attempts:
            return self._given_up(claimed, f"gave up after {claimed.attempts} attempts; last: {reason}", name)
        delay = retry_delay(claimed.attempts, settings.notify_backoff_initial_seconds,
                            settings.notify_backoff_cap_seconds, getattr(error, "retry_after", None), self._rng)
        log.info("delivery failed; retrying", tenant_id=str(claimed.tenant_id),
                 notification_id=str(claimed.notification_id), channel=claimed.channel,
                 attempts=claimed.attempts, retry_in_s=round(delay, 3), reason=reason)
        return Outcome(claimed, "queued", reason, name, delay)

    def _given_up(self, claimed: Claimed, reason: str, provider: str | None, *, forget: bool = False) -> Outcome:
        log.warning("delivery given up", tenant_id=str(claimed.tenant_id),
                    notification_id=str(claimed.notification_id), channel=claimed.channel, reason=reason)
        return Outcome(claimed, "failed", reason, provider, forget=forget)

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        """Every outcome of the round in one transaction, then the round's dead letters in one send."""
        if not outcomes:
            return
        async with self._pool.connection() as conn, conn.transaction():
            await self._write(conn, outcomes)
        await self._publish(outcomes)

    async def _publish(self, outcomes: Sequence[Outcome]) -> None:
        """Count the round's recorded outcomes, then send its dead letters (the given-up ones) in one send."""
        for outcome in outcomes:
            metrics.NOTIFICATION_ATTEMPTS.labels(channel=outcome.claimed.channel,
                                                 outcome=_ATTEMPT_OUTCOME[outcome.state]).inc()

    async def _write(self, conn: AsyncConnection[Any], outcomes: Sequence[Outcome]) -> None:
        """Every outcome in one statement, and the devices found gone in another."""
        if not outcomes:
            return
        # `attempts` guards against a late answer overwriting a newer claim after a lease ran out.
        await conn.execute(_RECORD, (json_rows([
            {"state": o.state, "reason": o.reason, "provider": o.provider, "delay": o.delay,
             "tenant_id": o.claimed.tenant_id, "notification_id": o.claimed.notification_id,
             "channel": o.claimed.channel, "seq": o.claimed.seq, "attempts": o.claimed.attempts}
            for o in outcomes]),))
        gone = [o.claimed for o in outcomes if o.forget]
        if gone:
            await conn.execute(_FORGET, ([c.tenant_id for c in gone], [c.game_id for c in gone],
                                         [c.channel for c in gone], [c.recipient for c in gone]))

        letters = [dead_letter(o.claimed, o.reason or "") for o in outcomes if o.state == "failed"]
        if letters:
            try:
                await self._producer.send(NOTIFICATIONS_DLQ, letters)
            except Exception:  # the records say failed with their reasons; the letters are the dashboard's copy
                log.warning("could not publish dead letters", count=len(letters), exc_info=True)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed delivery: its next state, why, by which provider, when to retry."""

    claimed: Claimed
    state: str
    reason: str | None
    provider: str | None
    delay: float = 0.0
    forget: bool = False


def _adapter(provider: Mail, channel: str) -> Mail:
    """The adapter of `provider` that carries `channel`: its own, when it routes each channel to one."""
    carrier = provider.carrier(cast("Channel", channel)) if isinstance(provider, Routing) else None
    return carrier or provider


def dead_letter(claimed: Claimed, reason: str) -> Message:
    """The `notifications.dlq` letter of a given-up delivery: keyed by tenant, the reason in a header."""
    value: dict[str, Any] = {"tenant_id": claimed.tenant_id, "game_id": claimed.game_id,
                             "notification_id": claimed.notification_id, "channel": claimed.channel,
                             "attempts": claimed.attempts, "reason": reason}
    return Message(claimed.tenant_id.bytes, msgspec.json.encode(value),
                   {REASON: reason[:1000], "notification.id": str(claimed.notification_id),
                    "notification.channel": claimed.channel})
