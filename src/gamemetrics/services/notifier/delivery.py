"""The delivery worker: claims due delivery records, hands each to its channel's provider, and
records what happened.

A claim is committed (state `sending`, one more attempt, a lease) before the provider is called,
so a notifier killed mid-send leaves a record that another (or its restart) claims again once the
lease runs out and sends under the same message id, which the outbox and providers keep to one
message. Transient failures are retried with exponential backoff and full jitter (never sooner
than a provider's Retry-After); after `notify_fallback_after` failed attempts a channel's second
provider takes over; a permanent refusal, or the last allowed attempt failing, gives the delivery
up: `failed` with the reason, and a letter on `notifications.dlq`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from gamemetrics.observability import metrics
from gamemetrics.ports.bus import NOTIFICATIONS_DLQ, Message, Producer
from gamemetrics.ports.mail import Mail, MailError, OutgoingMessage, Rejected
from gamemetrics.settings import NotifierSettings

log = structlog.get_logger("notifier")
REASON = "error.reason"

Providers = Mapping[str, Sequence[tuple[str, Mail]]]
"""Per channel, its providers in order (named for the record): the first, then its fallback."""

_CLAIM = """
UPDATE notification_deliveries d SET state = 'sending', attempts = d.attempts + 1,
       next_attempt_at = now() + make_interval(secs => %(lease)s), updated_at = now()
FROM (SELECT tenant_id, notification_id, channel FROM notification_deliveries
      WHERE state IN ('queued', 'sending') AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due, notifications n
WHERE (d.tenant_id, d.notification_id, d.channel) = (due.tenant_id, due.notification_id, due.channel)
  AND (n.tenant_id, n.notification_id) = (d.tenant_id, d.notification_id)
RETURNING d.tenant_id, d.notification_id, d.channel, d.attempts, d.message_id, d.recipient, d.subject, d.body,
          d.headers, n.game_id, n.player_id
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

    def message(self) -> OutgoingMessage:
        return OutgoingMessage(self.tenant_id, self.channel, self.recipient, self.body,  # type: ignore[arg-type]
                               subject=self.subject, player_id=self.player_id, headers=self.headers,
                               message_id=self.message_id)


def retry_delay(attempts: int, initial: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2^(attempts-1))], never below the provider's Retry-After."""
    ceiling = min(cap, initial * 2.0 ** min(max(attempts - 1, 0), 64))
    return max(rng.uniform(0.0, ceiling), retry_after or 0.0)


class Deliverer:
    """Takes due deliveries through their providers, a batch at a time, each send concurrent."""

    def __init__(self, pool: AsyncConnectionPool, producer: Producer, providers: Providers,
                 settings: NotifierSettings, *, rng: random.Random | None = None) -> None:
        self._pool = pool
        self._producer = producer
        self._providers = providers
        self._settings = settings
        self._rng = rng or random.Random()

    async def run(self) -> None:
        """Deliver until cancelled; sleep briefly when nothing is due."""
        while True:
            try:
                handled = await self.once()
            except Exception:  # the database away: the records wait, nothing is lost
                log.warning("delivery round failed; trying again", exc_info=True)
                handled = 0
            if handled == 0:
                await asyncio.sleep(self._settings.notify_poll_seconds)

    async def once(self) -> int:
        """Claim up to a batch of due deliveries, send each, record the outcomes; how many."""
        settings = self._settings
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_CLAIM, {"lease": settings.notify_lease_seconds,
                                              "limit": settings.notify_batch_size})
            claimed = [Claimed(*row) for row in await cur.fetchall()]
        if claimed:
            outcomes = await asyncio.gather(*(self._deliver(one) for one in claimed))
            await self._record(outcomes)
        return len(claimed)

    def _provider(self, claimed: Claimed) -> tuple[str, Mail] | None:
        chain = self._providers.get(claimed.channel, ())
        if not chain:
            return None
        use_fallback = claimed.attempts > self._settings.notify_fallback_after and len(chain) > 1
        return chain[1] if use_fallback else chain[0]

    async def _deliver(self, claimed: Claimed) -> Outcome:
        """Hand the message to its provider; what is to be recorded."""
        settings = self._settings
        chosen = self._provider(claimed)
        if chosen is None:
            return self._given_up(claimed, f"no provider carries the {claimed.channel} channel", None)
        name, provider = chosen
        try:
            await asyncio.wait_for(provider.send(claimed.message()), settings.notify_send_timeout_seconds)
        except Rejected as exc:
            # An unregistered token or expired subscription is no longer a contact point.
            return self._given_up(claimed, f"{name} refused it: {exc}", name, forget=exc.recipient_gone)
        except (MailError, TimeoutError, OSError) as exc:
            reason = f"{name}: timed out after {settings.notify_send_timeout_seconds}s" \
                if isinstance(exc, TimeoutError) else f"{name}: {exc}"
            if claimed.attempts >= settings.notify_max_attempts:
                return self._given_up(claimed, f"gave up after {claimed.attempts} attempts; last: {reason}", name)
            delay = retry_delay(claimed.attempts, settings.notify_backoff_initial_seconds,
                                settings.notify_backoff_cap_seconds, getattr(exc, "retry_after", None), self._rng)
            metrics.NOTIFICATION_ATTEMPTS.labels(channel=claimed.channel, outcome="retry").inc()
            log.info("delivery failed; retrying", tenant_id=str(claimed.tenant_id),
                     notification_id=str(claimed.notification_id), channel=claimed.channel,
                     attempts=claimed.attempts, retry_in_s=round(delay, 3), reason=reason)
            return Outcome(claimed, "queued", reason, name, delay)
        metrics.NOTIFICATION_ATTEMPTS.labels(channel=claimed.channel, outcome="sent").inc()
        return Outcome(claimed, "sent", None, name)

    def _given_up(self, claimed: Claimed, reason: str, provider: str | None, *, forget: bool = False) -> Outcome:
        metrics.NOTIFICATION_ATTEMPTS.labels(channel=claimed.channel, outcome="failed").inc()
        log.warning("delivery given up", tenant_id=str(claimed.tenant_id),
                    notification_id=str(claimed.notification_id), channel=claimed.channel, reason=reason)
        return Outcome(claimed, "failed", reason, provider, forget=forget)

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        """Every outcome of the round in one transaction, then the round's dead letters in one send."""
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # `attempts` guards against a late answer overwriting a newer claim after a lease ran out.
            await cur.executemany(
                "UPDATE notification_deliveries SET state = %s, reason = %s, provider = %s, updated_at = now(),"
                " next_attempt_at = now() + make_interval(secs => %s),"
                " sent_at = CASE WHEN %s::text = 'sent' THEN now() END"
                " WHERE tenant_id = %s AND notification_id = %s AND channel = %s AND attempts = %s",
                [(o.state, o.reason, o.provider, o.delay, o.state, o.claimed.tenant_id, o.claimed.notification_id,
                  o.claimed.channel, o.claimed.attempts) for o in outcomes])
            gone = [(o.claimed.tenant_id, o.claimed.game_id, o.claimed.channel, o.claimed.recipient)
                    for o in outcomes if o.forget]
            if gone:
                await cur.executemany("DELETE FROM notification_devices WHERE tenant_id = %s AND game_id = %s"
                                      " AND kind = %s AND address = %s", gone)
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


def dead_letter(claimed: Claimed, reason: str) -> Message:
    """The `notifications.dlq` letter of a given-up delivery: keyed by tenant, the reason in a header."""
    value: dict[str, Any] = {"tenant_id": claimed.tenant_id, "game_id": claimed.game_id,
                             "notification_id": claimed.notification_id, "channel": claimed.channel,
                             "attempts": claimed.attempts, "reason": reason}
    return Message(claimed.tenant_id.bytes, msgspec.json.encode(value),
                   {REASON: reason[:1000], "notification.id": str(claimed.notification_id),
                    "notification.channel": claimed.channel})
