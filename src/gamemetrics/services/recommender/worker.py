"""The interactions worker: processed events in, interactions and learnt items stored, the
interacting players' cached answers dropped."""

from __future__ import annotations

import uuid

import structlog

from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.processed import ProcessedEvent, UnreadableProcessedEvent, read_processed
from gamemetrics.ports.bus import PROCESSED_EVENTS, Bus, Record
from gamemetrics.ports.cache import Cache
from gamemetrics.services.recommender import metrics
from gamemetrics.services.recommender.interactions import Interaction, Interactions, interactions_of
from gamemetrics.services.recommender.serving import generation_key

GROUP = "recommender"
log = structlog.get_logger("recommender")


def decode(records: list[Record]) -> list[Interaction]:
    """The interactions of a batch; a record of an unknown schema is logged and skipped, since no
    later read could make more of it."""
    events: list[ProcessedEvent] = []
    for record in records:
        try:
            events.append(read_processed(record))
        except UnreadableProcessedEvent as exc:
            metrics.SKIPPED.inc()
            log.warning("processed event skipped", reason=str(exc), group=GROUP)
    return interactions_of(events)


class InteractionSink:
    """Stores a batch's interactions, then renews the interacting players' answer generations."""

    def __init__(self, interactions: Interactions, cache: Cache, generation_seconds: float) -> None:
        self._interactions = interactions
        self._cache = cache
        self._ttl = generation_seconds

    async def __call__(self, batch: list[Interaction]) -> None:
        await self._interactions.add(batch)
        players = {(i.tenant_id, i.game_id, i.player_id) for i in batch}
        for tenant_id, game_id, player_id in players:
            # A new generation makes every answer kept for the player unreachable; it outlives them.
            await self._cache.set(generation_key(tenant_id, game_id, player_id), uuid.uuid4().hex.encode(), self._ttl)


def interaction_loop(bus: Bus, sink: InteractionSink, *, batch_size: int) -> ConsumerLoop[list[Interaction]]:
    """The consumer of `player.events.processed` in the recommender's own group."""
    return ConsumerLoop(bus, GROUP, [PROCESSED_EVENTS], prepare=decode, sink=sink, batch_size=batch_size,
                        poll_timeout=0.5)
