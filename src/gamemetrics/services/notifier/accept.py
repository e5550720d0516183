"""Accepting a notification request: check it, find the player's contact points and choices,
render each channel's message, and write the notification with a delivery record per channel.

The same path serves `POST /v1/notifications` and the `notifications.requests` topic; what it
refuses it refuses with a status and a reason (a 4xx at the API, a dead letter on the topic).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import structlog
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from gamemetrics.events.notification_requests import NotificationRequest
from gamemetrics.observability import metrics
from gamemetrics.ports.mail import KeptMail, OutgoingMessage
from gamemetrics.services.notifier import store
from gamemetrics.services.notifier.preferences import Preferences
from gamemetrics.services.notifier.store import DeliveryRow
from gamemetrics.services.notifier.templates import CHANNEL_FIELDS, Template, TemplateInvalid, render
from gamemetrics.services.notifier.unsubscribe import LinkSigner, Unsubscription

log = structlog.get_logger("notifier")

Keeper = Callable[[str], "tuple[str, KeptMail] | None"]
"""Per channel, the provider (and its name) that keeps a first attempt in this database, if any."""

AUTO_ORDER = ("push", "web_push", "email", "sms", "in_app")
"""`"channels": "auto"` picks the first of these the template has and the player can be reached on."""

_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
DEVICE_CHANNELS = ("push", "web_push")
"""Channels whose message goes to every device the player registered, a delivery record each."""
SEND_AT_SKEW = timedelta(seconds=60)
MAX_KEY = 255


class Refused(Exception):
    """A request that cannot become a notification: its status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Accepted:
    notification_id: uuid.UUID
    created: bool


def contact_point(channel: str, player_id: str, traits: Mapping[str, Any],
                  devices: Mapping[str, Sequence[str]] | None = None) -> tuple[str | None, str | None]:
    """The player's address on `channel` (for push and Web Push the newest device's; None and why
    when there is none usable)."""
    if channel == "in_app":
        return player_id, None
    if channel in DEVICE_CHANNELS:
        addresses = (devices or {}).get(channel)
        return (addresses[0], None) if addresses else \
            (None, f"no contact point: no {channel} registration for this player")
    if channel == "email":
        email = traits.get("email")
        if not isinstance(email, str) or not email:
            return None, "no contact point: the profile has no email trait"
        return (email, None) if _EMAIL.match(email) else (None, f"invalid email address {email[:80]!r}")
    if channel == "sms":
        phone = traits.get("phone")
        if not isinstance(phone, str) or not phone:
            return None, "no contact point: the profile has no phone trait"
        compact = re.sub(r"[\s().-]", "", phone)
        return (compact, None) if _PHONE.match(compact) else (None, f"invalid phone number {phone[:40]!r} (E.164)")
    return None, f"no contact point for {channel}"


def chosen_channels(requested: Sequence[str] | str, template: Template, player_id: str,
                    traits: Mapping[str, Any], choices: Preferences,
                    devices: Mapping[str, Sequence[str]]) -> list[str]:
    """The channels to write records for: the requested ones, or for `auto` the first reachable one."""
    if requested == "auto":
        for channel in AUTO_ORDER:
            if channel in template.content and contact_point(channel, player_id, traits, devices)[0] is not None \
                    and choices.allows(template.category, channel):
                return [channel]
        return [template.channels[0]]  # none reachable: its record says why
    if isinstance(requested, str) or not requested or not all(isinstance(c, str) for c in requested):
        raise Refused(400, 'channels is "auto" or a non-empty list of channels')
    unknown = [c for c in requested if c not in CHANNEL_FIELDS]
    if unknown:
        raise Refused(400, f"unknown channels {', '.join(unknown)}; choose from {', '.join(CHANNEL_FIELDS)}")
    missing = [c for c in requested if c not in template.content]
    if missing:
        raise Refused(422, f"template {template.name!r} has no text for {', '.join(missing)}")
    return list(dict.fromkeys(requested))


@dataclass(slots=True)
class _Waiting:
    """A checked request waiting for its batch, and where its answer goes."""

    request: NotificationRequest
    now: datetime | None
    answer: asyncio.Future[Accepted]

    def settle(self, result: Accepted | BaseException) -> None:
        if self.answer.done():  # its caller went away, or a retry of its batch already answered it
            return
        if isinstance(result, BaseException):
            self.answer.set_exception(result)
        else:
            self.answer.set_result(result)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A request's records before the player's caps and quiet hours are applied."""

    waiting: _Waiting
    template: Template
    choices: Preferences
    devices: Mapping[str, Sequence[str]]
    rows: list[DeliveryRow]
    fingerprint: bytes
    moment: datetime
    notification_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def notification(self, rows: Sequence[DeliveryRow]) -> store.NewNotification:
        """The notification to write, with `rows` (the plan's, after caps and quiet hours)."""
        request = self.waiting.request
        return store.NewNotification(request.game_id, request.player_id, self.template, request.idempotency_key,
                                     request.send_at, rows, self.fingerprint, request.send_until,
                                     self.notification_id)

    def capped(self) -> set[str]:
        """The channels whose daily cap this request is counted against."""
        if self.template.critical:
            return set()
        return {row.channel for row in self.rows if row.state == "queued"} & set(self.choices.daily_caps)


@dataclass(slots=True)
class _Kept:
    """What a batch's transaction keeps in this database as it writes the records, and whether it
    left any record for the delivery worker."""

    enabled: bool
    """Whether messages are kept here at all (not after a batch that tried failed)."""
    messages: list[tuple[_Plan, DeliveryRow, KeptMail]] = field(default_factory=list)
    left_queued: bool = False

    async def keep(self, conn: AsyncConnection, tenant: uuid.UUID, created: set[uuid.UUID]) -> None:
        """Keep the messages of the notifications in `created` in `conn`'s transaction, a call per keeper."""
        by_keeper: dict[int, tuple[KeptMail, list[OutgoingMessage]]] = {}
        for plan, row, mail in self.messages:
            if plan.notification_id in created:
                by_keeper.setdefault(id(mail), (mail, []))[1].append(OutgoingMessage(
                    tenant, row.channel, row.recipient, row.body,  # type: ignore[arg-type]
                    subject=row.subject, player_id=plan.waiting.request.player_id, headers=row.headers or {},
                    message_id=row.message_id))
        for mail, messages in by_keeper.values():
            await mail.keep(conn, messages)


class Acceptor:
    """Turns requests into stored notifications, once per idempotency key.

    Requests that arrive while a batch is being written wait and are written together, one
    transaction per tenant: their reads in one round trip, their notifications with the COMMIT in
    another, so the cost of a round trip is shared by every request in flight. Up to `writers`
    batches are written at once; the first request waits for nobody.

    A message due at once on a channel this database keeps (`keeper`: the in-app inbox, and every
    channel of the embedded default) is kept in the same transaction and its record written `sent`:
    the notification, its record and its message commit together, with no delivery round after."""

    def __init__(self, pool: AsyncConnectionPool, links: LinkSigner, *, max_body_bytes: int,
                 max_batch: int = 128, writers: int = 4, on_written: Callable[[], None] | None = None,
                 keeper: Keeper | None = None) -> None:
        self._pool = pool
        self._on_written = on_written
        self._keeper = keeper
        self._links = links
        self._max_body = max_body_bytes
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._writing = 0
        self._max_writers = writers

    async def accept(self, request: NotificationRequest, *, now: datetime | None = None) -> Accepted:
        """The notification of `request` (the existing one when its key was seen); Refused says why not."""
        _check(request, now)
        waiting = _Waiting(request, now, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if self._writing < self._max_writers:
            # Counted now, and uncounted by the writer in the same step as it finds nothing waiting:
            # a request can never be left waiting with no writer to take it.
            self._writing += 1
            writer = asyncio.create_task(self._write_batches())
            self._writers.add(writer)  # a reference, so the task is not collected while it runs
            writer.add_done_callback(self._writers.discard)
        return await waiting.answer

    async def accept_many(self, requests: Sequence[NotificationRequest]) -> list[Accepted | Refused]:
        """Each request's notification or why not, in order: a refused one does not stop the others.
        Anything else (the database away) is raised, after every request has been answered."""
        answers = await asyncio.gather(*(self.accept(request) for request in requests), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, Refused):
                raise answer
        return cast("list[Accepted | Refused]", answers)

    async def _write_batches(self) -> None:
        """Write what is waiting, a batch at a time, until nothing is."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
                by_tenant: dict[uuid.UUID, list[_Waiting]] = {}
                for waiting in batch:
                    by_tenant.setdefault(waiting.request.tenant_id, []).append(waiting)
                await asyncio.gather(*(self._write(group) for group in by_tenant.values()))
        finally:
            self._writing -= 1

    async def _write(self, group: list[_Waiting], *, keep: bool = True) -> None:
        try:
            await self._write_together(group, keep=keep)
        except Exception as exc:
            if keep and self._keeper is not None:
                # Keeping the messages may be what failed: the batch again without, their records
                # left queued for the delivery worker (which keeps them, or retries as for any provider).
                log.warning("accepting with the messages kept failed; accepting without", exc_info=True)
                await self._write([w for w in group if not w.answer.done()], keep=False)
                return
            if len(group) == 1:
                group[0].settle(exc)
                return
            # One request's statement failed the transaction: each again alone, so it fails alone.
            for waiting in group:
                if not waiting.answer.done():
                    await self._write([waiting], keep=False)

    async def _write_together(self, group: list[_Waiting], *, keep: bool) -> None:
        """Accept the group's requests (one tenant's) in one transaction: every read in one
        statement, every notification of a player without caps in another; with `keep`, the
        messages due now on a channel this database keeps are kept in it too."""
        tenant = group[0].request.tenant_id
        written: list[tuple[list[_Plan], AsyncCursor[Any]]] = []
        kept = _Kept(enabled=keep)
        async with store.tenant_transaction(self._pool, tenant, pipelined=True) as conn:
            asked = await store.ask_contexts(conn, tenant, [
                store.Asked(w.request.game_id, w.request.player_id, w.request.template, w.request.idempotency_key)
                for w in group])
            plans: list[_Plan] = []
            for waiting, found in zip(group, await store.read_contexts(asked), strict=True):
                try:
                    planned = self._plan(waiting, found)
                except Refused as exc:
                    waiting.settle(exc)
                    continue
                if isinstance(planned, Accepted):
                    waiting.settle(planned)
                else:
                    plans.append(planned)
            # A player's daily cap is counted against what was accepted before, this batch's earlier
            # requests among them: such players' requests are written one at a time, in order.
            counted = [plan for plan in plans if plan.choices.daily_caps]
            # Two requests at the cap at once must not both count below it: each capped channel's
            # count and the inserts after it hold the player's channel lock until the commit (all
            # taken first, in one order, so two transactions cannot deadlock).
            for game, player, channel in sorted({(p.waiting.request.game_id, p.waiting.request.player_id, channel)
                                                 for p in counted for channel in p.capped()}):
                await store.lock_player_channel(conn, tenant, game, player, channel)
            for plan in counted:
                rows: list[DeliveryRow] = []
                for row in plan.rows:
                    if row.state == "queued" and not plan.template.critical:
                        # The count sees the inserts of this batch sent before it: one transaction.
                        row = await self._limit(conn, row, plan.waiting.request, plan.choices, plan.moment)
                    rows.extend(every_device(row, plan.devices))
                rows = self._kept_now(plan, rows, kept)
                written.append(([plan], await store.insert_notifications(conn, tenant, [plan.notification(rows)])))
            free = [plan for plan in plans if not plan.choices.daily_caps]
            if free:
                written.append((free, await store.insert_notifications(conn, tenant, [
                    plan.notification(self._kept_now(plan, [device for row in plan.rows for device in every_device(
                        _quiet(row, plan.waiting.request, plan.choices, plan.moment)
                        if row.state == "queued" and not plan.template.critical else row, plan.devices)], kept))
                    for plan in free])))
            created: set[uuid.UUID] | None = None
            if kept.messages:
                # Only a notification written now has its messages kept (a concurrent request may
                # have taken its key): which ones is read before the COMMIT, a round trip more.
                created = {i for _, cur in written for i in await store.inserted(cur)}
                await kept.keep(conn, tenant, created)
        if created is None:  # after the commit: the inserts and the COMMIT shared one round trip
            created = {i for _, cur in written for i in await store.inserted(cur)}
        for plan, row, _ in kept.messages:
            if plan.notification_id in created:
                metrics.NOTIFICATION_ATTEMPTS.labels(channel=row.channel, outcome="sent").inc()
        if kept.left_queued and self._on_written is not None:
            self._on_written()  # deliveries are due (or will be): the delivery worker need not wait for its poll
        for done, _ in written:
            for plan in done:
                if plan.notification_id in created:
                    plan.waiting.settle(Accepted(plan.notification_id, created=True))
                else:
                    try:
                        plan.waiting.settle(await self._theirs(plan.waiting.request, plan.fingerprint))
                    except Refused as exc:
                        plan.waiting.settle(exc)

    def _kept_now(self, plan: _Plan, rows: list[DeliveryRow], kept: _Kept) -> list[DeliveryRow]:
        """`rows` with each one due now on a channel this database keeps written `sent` by its
        keeper, and noted in `kept` to be kept in the transaction."""
        send_at = plan.waiting.request.send_at
        due = send_at is None or send_at <= (plan.waiting.now or datetime.now(UTC))
        out: list[DeliveryRow] = []
        for row in rows:
            keeper = self._keeper(row.channel) if self._keeper and kept.enabled and due and row.state == "queued" \
                and row.not_before is None else None
            if keeper is not None:
                row = replace(row, state="sent", provider=keeper[0])
                kept.messages.append((plan, row, keeper[1]))
            kept.left_queued |= row.state == "queued"
            out.append(row)
        return out

    async def _theirs(self, request: NotificationRequest, fingerprint: bytes) -> Accepted:
        """The notification a concurrent request with the same key wrote (Refused when it asked otherwise)."""
        async with store.tenant_transaction(self._pool, request.tenant_id) as conn:
            seen = await store.existing_notification(conn, request.tenant_id, request.idempotency_key or "")
        assert seen is not None
        if seen[1] not in (None, fingerprint):
            raise Refused(422, "this Idempotency-Key was used for a different request; use a new key")
        return Accepted(seen[0], created=False)

    def _plan(self, waiting: _Waiting, found: store.AcceptContext) -> _Plan | Accepted:
        """The request's records as its template, player and choices make them; Accepted when its key was seen."""
        request, now = waiting.request, waiting.now
        game, player = request.game_id, request.player_id
        fingerprint = request_hash(request)
        if found.existing is not None:
            if found.existing_hash not in (None, fingerprint):
                raise Refused(422, "this Idempotency-Key was used for a different request; use a new key")
            return Accepted(found.existing, created=False)
        template, traits, choices, devices = found.template, found.traits, found.preferences, found.devices
        if template is None:
            raise Refused(404, f"no template {request.template!r} in game {game}")
        if traits is None:
            raise Refused(404, f"no player {player!r} in game {game}")
        channels = chosen_channels(request.channels, template, player, traits, choices, devices)
        context = {**request.data, "player": {"id": player, "traits": traits}}
        rows = [self._row(template, channel, request.tenant_id, game, player, traits, devices, choices, context)
                for channel in channels]
        return _Plan(waiting, template, choices, devices, rows, fingerprint,
                     request.send_at or now or datetime.now(UTC))

    async def _limit(self, conn: AsyncConnection, row: DeliveryRow, request: NotificationRequest,
                     choices: Preferences, moment: datetime) -> DeliveryRow:
        """The row within the player's daily cap (else suppressed) and outside their quiet hours (else deferred)."""
        cap = choices.daily_caps.get(row.channel)
        if cap is not None:
            zone = ZoneInfo(choices.quiet_hours.timezone) if choices.quiet_hours else UTC
            midnight = datetime.combine(moment.astimezone(zone).date(), time(0), zone)
            if await store.sent_today(conn, request.tenant_id, request.game_id, request.player_id, row.channel,
                                      midnight) >= cap:
                return replace(row, state="suppressed", reason=f"capped: {cap} {row.channel} messages a day")
        return _quiet(row, request, choices, moment)

    def _row(self, template: Template, channel: str, tenant: uuid.UUID, game: uuid.UUID, player: str,
             traits: Mapping[str, Any], devices: Mapping[str, Sequence[str]], choices: Preferences,
             context: Mapping[str, Any]) -> DeliveryRow:
        # An opt-out holds even for critical templates: the law requires honouring it.
        if not choices.allows(template.category, channel):
            return DeliveryRow(channel, "suppressed", f"opted out of {template.category} by {channel}")
        recipient, why = contact_point(channel, player, traits, devices)
        if recipient is None:
            return DeliveryRow(channel, "suppressed" if why and why.startswith("no contact") else "failed", why)
        try:
            message = render(template, channel, _locale(traits), context)
        except TemplateInvalid as exc:
            raise Refused(422, f"the template does not render with this data: {exc}") from None
        size = len(message.body.encode())
        if size > self._max_body:
            raise Refused(422, f"the rendered {channel} body is {size} bytes; at most {self._max_body}")
        headers = self._links.headers(Unsubscription(tenant, game, player, template.category)) \
            if channel == "email" else {}
        return DeliveryRow(channel, "queued", None, recipient, message.subject, message.body, headers)


def _check(request: NotificationRequest, now: datetime | None) -> None:
    """Refused when the request is malformed on its face (before anything is read)."""
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        raise Refused(400, f"an idempotency key has 1-{MAX_KEY} characters")
    if not 1 <= len(request.player_id) <= 256 or "\x00" in request.player_id:
        raise Refused(400, "a player id has 1-256 characters and no NUL")
    send_at, send_until = request.send_at, request.send_until
    if send_at is not None:
        if send_at.tzinfo is None:
            raise Refused(400, "send_at needs a time zone, e.g. 2026-12-24T18:00:00Z")
        if send_at < (now or datetime.now(UTC)) - SEND_AT_SKEW:
            raise Refused(422, f"send_at {send_at.isoformat()} is in the past")
    if send_until is not None:
        if send_until.tzinfo is None:
            raise Refused(400, "send_until needs a time zone, e.g. 2026-12-24T22:00:00Z")
        if send_until <= (now or datetime.now(UTC)):
            raise Refused(422, f"send_until {send_until.isoformat()} is in the past")
        if send_at is not None and send_until <= send_at:
            raise Refused(422, f"send_until {send_until.isoformat()} is not after send_at {send_at.isoformat()}")


def _quiet(row: DeliveryRow, request: NotificationRequest, choices: Preferences, moment: datetime) -> DeliveryRow:
    """The row outside the player's quiet hours (deferred), or suppressed when they outlast its send window."""
    until = choices.quiet_hours.until(moment) if choices.quiet_hours else None
    if until and request.send_until and until >= request.send_until:
        why = f"quiet hours until {until.isoformat()} outlast the send window ({request.send_until.isoformat()})"
        return replace(row, state="suppressed", reason=why)
    return replace(row, not_before=until) if until else row


def every_device(row: DeliveryRow, devices: Mapping[str, Sequence[str]]) -> list[DeliveryRow]:
    """A queued push or Web Push row once per registered device (newest first), numbered; other rows as they are."""
    addresses = devices.get(row.channel) if row.channel in DEVICE_CHANNELS and row.state == "queued" else None
    if not addresses:
        return [row]
    return [replace(row, recipient=address, seq=seq) for seq, address in enumerate(addresses)]


def request_hash(request: NotificationRequest) -> bytes:
    """What a request asks, hashed: the same key with other contents is another request."""
    asked = msgspec.structs.replace(request, idempotency_key=None, requested_by="")
    return hashlib.sha256(msgspec.json.encode(asked, order="sorted")).digest()


def _locale(traits: Mapping[str, Any]) -> str | None:
    locale = traits.get("locale")
    return locale.replace("_", "-") if isinstance(locale, str) else None
