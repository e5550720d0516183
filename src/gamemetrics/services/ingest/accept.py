"""The shared core of every ingest route: check each event, append the good ones, report the rest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from gamemetrics.events.envelope import RawEnvelope, Source, partition_key
from gamemetrics.events.validation import InvalidEvent, Limits, decode_event
from gamemetrics.observability import metrics, tracing
from gamemetrics.ports.bus import RAW_EVENTS, BusError, Message, Producer
from gamemetrics.ports.cache import CacheError, RateLimiter
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.services.ingest.refusals import RefusalCounts
from gamemetrics.tenancy.keys import WriteKey

_encoder = msgspec.json.Encoder()
_SCHEMA_VERSION = "1"  # the schema_version every RawEnvelope is written with, as a header for outside readers


class Rejection(msgspec.Struct):
    index: int
    error: str


@dataclass(slots=True)
class Outcome:
    """What happened to a batch: how many were appended, which were refused and why."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    event_ids: list[uuid.UUID] = field(default_factory=list)


class Acceptor:
    """Validates events for a key and appends the valid ones to the raw topic, durably."""

    def __init__(self, producer: Producer, limiter: RateLimiter, limits: Limits, max_batch: int,
                 refusals: RefusalCounts) -> None:
        self._producer = producer
        self._refusals = refusals
        self._limiter = limiter
        self._limits = limits
        self._max_batch = max_batch

    async def accept(
        self, key: WriteKey, items: Sequence[tuple[int, bytes | msgspec.Raw]], *, source: Source, endpoint: str,
        prior_rejections: Sequence[Rejection] = (),
    ) -> Outcome:
        """Append every valid item; raise IngestError when the batch as a whole cannot be taken.

        `items` pairs each event's JSON with its index in the request, so rejections name the
        index the client sent even when a route refused some items before (`prior_rejections`).
        """
        total = len(items) + len(prior_rejections)
        if total > self._max_batch:
            raise IngestError(413, f"batch has {total} events; the limit is {self._max_batch}", events=total)
        try:
            wait = await self._limiter.take(str(key.key_id), max(total, 1))
        except CacheError as exc:
            raise IngestError(503, f"the rate limiter cannot be reached; nothing was stored ({exc})",
                              retry_after=1.0, events=total) from exc
        if wait > 0:
            raise IngestError(429, "write key is over its event rate; retry later", retry_after=wait, events=total)
        now = datetime.now(UTC)
        outcome = Outcome(rejected=list(prior_rejections))
        messages: list[Message] = []
        headers = {"schema_version": _SCHEMA_VERSION}
        tenant_bytes = key.tenant_id.bytes
        kinds: dict[str, int] = {"invalid_schema": len(prior_rejections)} if prior_rejections else {}
        for index, raw in items:
            try:
                event = decode_event(raw, limits=self._limits, now=now, allow_history=source == "import")
            except InvalidEvent as exc:
                outcome.rejected.append(Rejection(index, str(exc)))
                kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
                continue
            envelope = RawEnvelope(key.tenant_id, key.game_id, now, msgspec.Raw(raw), source)
            messages.append(Message(partition_key(key.tenant_id, event.player_id, tenant_bytes=tenant_bytes),
                                    _encoder.encode(envelope), headers))
            outcome.event_ids.append(event.event_id)
        if messages:
            try:
                if tracing.enabled():
                    await self._send_traced(messages, headers)
                else:
                    await self._producer.send(RAW_EVENTS, messages)
            except BusError as exc:
                raise IngestError(503, f"the event bus cannot take the batch now; nothing was stored ({exc})",
                                  retry_after=1.0, events=total) from exc
        for kind, refused in kinds.items():
            self._refusals.add(key.tenant_id, key.game_id, kind, events=refused)
        outcome.accepted = len(messages)
        outcome.rejected.sort(key=lambda r: r.index)
        metrics.EVENTS_ACCEPTED.labels(endpoint).inc(outcome.accepted)
        metrics.EVENTS_REJECTED.labels(endpoint).inc(len(outcome.rejected))
        metrics.INGEST_BATCH_SIZE.observe(total)
        return outcome

    async def _send_traced(self, messages: list[Message], headers: dict[str, str]) -> None:
        """Send `messages` inside a producer span whose context every one of them carries."""
        with tracing.producer_span(RAW_EVENTS, len(messages)):
            tracing.inject(headers)  # the one mapping all the request's messages hold
            await self._producer.send(RAW_EVENTS, messages)
