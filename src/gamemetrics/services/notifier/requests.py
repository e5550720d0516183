"""The `notifications.requests` worker: each request accepted as `POST /v1/notifications` accepts
it, on the shared consumer loop in a group of its own; a request refused for what it says is
dead-lettered with the reason, the rest of its batch kept."""

from __future__ import annotations

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

    def __init__(self, bus: Bus, acceptor: Acceptor, *, poll_timeout: float = 1.0, batch_size: int = 200) -> None:
        self._bus = bus
        self._acceptor = acceptor
        self.loop: ConsumerLoop[Decoded] = ConsumerLoop(bus, GROUP, [NOTIFICATION_REQUESTS], prepare=decode,
                                                        sink=self._accept_all, batch_size=batch_size,
                                                        poll_timeout=poll_timeout)

    async def _accept_all(self, batch: Decoded) -> None:
        letters: list[Message] = []
        for record, request in batch:
            if isinstance(request, str):
                letters.append(dead_letter(record, request, None, record.value))
                continue
            try:
                await self._acceptor.accept(request)
            except Refused as exc:
                log.info("notification request refused", tenant_id=str(request.tenant_id), topic=record.topic,
                         partition=record.partition, offset=record.offset, reason=exc.reason)
                letters.append(dead_letter(record, f"{exc.status}: {exc.reason}", request.tenant_id, record.value))
        if letters:
            await self._bus.producer().send(NOTIFICATIONS_DLQ, letters)

    async def run(self) -> None:
        await self.loop.run()
