"""Builds the recommender on the adapters it is given: its routes, the interactions worker, the
trainer on its schedule and the eraser of the `vectors` store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.auth.secret import platform_secret
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.vectors import Vectors, VectorStoreError
from gamemetrics.service import Adapters, Service
from gamemetrics.services.recommender.catalogue import Catalogue
from gamemetrics.services.recommender.eraser import VectorsEraser
from gamemetrics.services.recommender.http import RecommenderRoutes
from gamemetrics.services.recommender.interactions import Interactions
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.serving import Recommender
from gamemetrics.services.recommender.training import Trainer
from gamemetrics.services.recommender.worker import InteractionSink, interaction_loop
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import Probe, database_probe
from gamemetrics.web.principal import Guard
from gamemetrics.web.refusals import UNAVAILABLE, exception_handlers

log = structlog.get_logger("recommender")

CACHE_NAMESPACE = "recommender"
HEALTH_COLLECTION = "rec_health"
GUARD_MEMO_SECONDS = 60
# A popular list aggregates the game's recent window; players of a segment share it this long.
POPULAR_MEMO_SECONDS = 10


def vectors_probe(vectors: Vectors) -> Probe:
    """A probe that asks the vector store for a small collection of its own."""
    async def probe() -> None:
        await vectors.ensure_collection(HEALTH_COLLECTION, 2)

    return probe


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The recommender on `adapters`; it alone opens the Vectors port, and closes it on exit."""
    if adapters.open_vectors is None:
        raise RuntimeError("the recommender needs the Vectors port; the runtime gives it `open_vectors`")
    s = settings.recommender
    pool, caches = adapters.pool, adapters.caches
    vectors = adapters.open_vectors()
    try:
        cache = caches.cache(CACHE_NAMESPACE)
        # A generation outlives every answer kept under it, so no answer is ever read under an old one.
        generations = 2 * s.recommender_cache_seconds
        tombstones = Tombstones(platform_secret(settings))
        catalogue, interactions, models = Catalogue(pool), Interactions(pool, tombstones), Models(pool, vectors)
        recommender = Recommender(pool, interactions, models, vectors, cache, cache_seconds=s.recommender_cache_seconds,
                                  popular_days=s.recommender_popular_days,
                                  popular=LocalMemo(10_000, ttl_seconds=POPULAR_MEMO_SECONDS))
        trainer = Trainer(pool, interactions, models, s)
        loop = interaction_loop(adapters.bus, InteractionSink(interactions, cache, generations),
                                batch_size=s.recommender_batch_events)
        # Answers are served from the cache: a signature check and a games lookup would cost more.
        guard = Guard(token_verifier(settings, pool), TenancyStore(pool),
                      verified=LocalMemo(10_000, ttl_seconds=GUARD_MEMO_SECONDS),
                      games=LocalMemo(10_000, ttl_seconds=GUARD_MEMO_SECONDS))
        routes = RecommenderRoutes(pool, guard, catalogue, interactions, models, recommender, trainer).routes()
        try:
            await models.warm(await interactions.games())
        except VectorStoreError as exc:  # serving falls back to popular items meanwhile; /readyz says why
            log.warning("vectors not loaded at start-up", reason=str(exc))
        yield Service(
            routes=routes,
            exception_handlers=exception_handlers(unavailable_errors=(*UNAVAILABLE, VectorStoreError)),
            workers={"interactions": loop.run, "training": trainer.run},
            checks={"database": database_probe(pool), "bus": adapters.bus.ping, "vectors": vectors_probe(vectors),
                    **({"cache": caches.ping} if caches.shared else {})},
            erasers=[VectorsEraser(pool, models, vectors, cache, generations)],
        )
    finally:
        await vectors.close()
