"""The `notifications.requests` worker: each request accepted as `POST /v1/notifications` accepts
it, on the shared consumer loop in a group of its own; a request refused for what it says is
dead-lettered with the reason, the rest of its batch kept.

A batch's requests are accepted concurrently across players (up to `concurrency` at once), and in
their order for each player, whose caps and idempotency keys depend on it; the offsets are
committed once every request of the batch is accepted or dead-lettered."""

from __future__ import annotations

import asyncio

import structlog

from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.dead_letters import dead_letter
from gamemetrics.events.notification_requests import NotificationRequest, UnreadableRequest, read_request
from gamemetrics.ports.bus import NOTIFICATION_REQUESTS, NOTIFICATIONS_DLQ, Bus, Message, Record
from gamemetrics.services.notifier.accept import Acceptor, Refused

GROUP = "notifier-requests"
log = structlog.get_logger("notifier")

Decoded = list[tuple[Record, NotificationRequest | str]]
"""Each record with its request, or the reason it cannot be read."""


def decode(records: list[Record]) -> Decoded:
    """The batch's requests; an unreadable one keeps its reason for the dead letter."""
    decoded: Decoded = []
    for record in records:
        try:
            decoded.append((record, read_request(record)))
        except UnreadableRequest as exc:
            decoded.append((record, str(exc)))
    return decoded


class RequestWorker:
    """Accepts the requests of the topic; refusals become letters on `notifications.dlq`."""

    def __init__(self, bus: Bus, acceptor: Acceptor, *, poll_timeout: float = 1.0, batch_size: int = 200,
                 concurrency: int = 8) -> None:
        self._bus = bus
        self._acceptor = acceptor
        self._concurrency = concurrency
        self.loop: ConsumerLoop[Decoded] = ConsumerLoop(bus, GROUP, [NOTIFICATION_REQUESTS], prepare=decode,
                                                        sink=self._accept_all, batch_size=batch_size,
                                                        poll_timeout=poll_timeout)

    async def _accept_all(self, batch: Decoded) -> None:
        letters: list[Message] = []
        by_player: dict[bytes, list[tuple[Record, NotificationRequest]]] = {}
        for record, request in batch:
            if isinstance(request, str):
                letters.append(dead_letter(record, request, None, record.value))
            else:
                by_player.setdefault(request.tenant_id.bytes + request.player_id.encode(), []).append(
                    (record, request))
        slots = asyncio.Semaphore(self._concurrency)

        async def in_order(requests: list[tuple[Record, NotificationRequest]]) -> None:
            async with slots:
                for record, request in requests:
                    letter = await self._accept(record, request)
                    if letter is not None:
                        letters.append(letter)

        await asyncio.gather(*(in_order(requests) for requests in by_player.values()))
        if letters:
            await self._bus.producer().send(NOTIFICATIONS_DLQ, letters)

    async def _accept(self, record: Record, request: NotificationRequest) -> Message | None:
        """Accept one request; its dead letter when it is refused."""
        try:
            await self._acceptor.accept(request)
        except Refused as exc:
            log.info("notification request refused", tenant_id=str(request.tenant_id), topic=record.topic,
                     partition=record.partition, offset=record.offset, reason=exc.reason)
            return dead_letter(record, f"{exc.status}: {exc.reason}", request.tenant_id, record.value)
        return None

    async def run(self) -> None:
        await self.loop.run()
