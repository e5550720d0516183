"""Training a game's model: read its weighted interactions, factorise them, publish the version."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from psycopg_pool import AsyncConnectionPool

from gamemetrics.services.recommender.catalogue import tenant_transaction
from gamemetrics.services.recommender.factors import Algorithm, Progress, fit, matrix
from gamemetrics.services.recommender.interactions import Interactions, weights_sql
from gamemetrics.services.recommender.metrics import STALEST_MODEL, TRAININGS
from gamemetrics.services.recommender.models import ActiveModel, Models
from gamemetrics.settings import RecommenderSettings

log = structlog.get_logger("recommender")


@dataclass(frozen=True, slots=True)
class Trained:
    model: ActiveModel
    players: int
    items: int
    interactions: int


class NothingToTrain(Exception):
    """A game without interactions yet."""


async def weighted(pool: AsyncConnectionPool, interactions: Interactions, tenant_id: uuid.UUID,
                   game_id: uuid.UUID, *, before: datetime | None = None) -> list[tuple[str, str, float]]:
    """The game's (player, item, summed weight) triples, of interactions before `before` if given."""
    case, params = weights_sql(await interactions.weights(tenant_id, game_id))
    async with pool.connection() as conn, conn.transaction():
        await tenant_transaction(conn, tenant_id)
        cur = await conn.execute(
            f"SELECT player_id, item_id, sum({case})::real AS w FROM rec_interactions"
            " WHERE tenant_id = %s AND game_id = %s AND (%s::timestamptz IS NULL OR at < %s)"
            f" GROUP BY 1, 2 HAVING sum({case}) > 0",
            [*params, tenant_id, game_id, before, before, *params])
        return [(r[0], r[1], float(r[2])) for r in await cur.fetchall()]


class Trainer:
    """Trains games' models with the configured algorithm, one game at a time."""

    def __init__(self, pool: AsyncConnectionPool, interactions: Interactions, models: Models,
                 settings: RecommenderSettings) -> None:
        self._pool = pool
        self._interactions = interactions
        self._models = models
        self._settings = settings
        self._lock = asyncio.Lock()

    async def train(self, tenant_id: uuid.UUID, game_id: uuid.UUID, *, algorithm: Algorithm | None = None,
                    fitting: Progress | None = None, storing: Progress | None = None) -> Trained:
        """Train and publish a new version of the game's model."""
        s = self._settings
        algorithm = algorithm or s.recommender_algorithm
        async with self._lock:
            # What is stored from now on is new to this version, even while it is being fitted.
            async with self._pool.connection() as conn:
                cur = await conn.execute("SELECT now()")
                row = await cur.fetchone()
            read_at: datetime = row[0] if row else datetime.now().astimezone()
            triples = await weighted(self._pool, self._interactions, tenant_id, game_id)
            if not triples:
                raise NothingToTrain(f"game {game_id} has no interactions to learn from yet")
            m = matrix(triples)
            factors = await asyncio.to_thread(
                fit, m, algorithm=algorithm, factors=s.recommender_factors, iterations=s.recommender_iterations,
                regularization=s.recommender_regularization, progress=fitting)
            model = await self._models.publish(tenant_id, game_id, factors, algorithm=algorithm,
                                               interactions=len(triples), read_at=read_at, progress=storing)
        log.info("model trained", tenant=str(tenant_id), game=str(game_id), version=model.version,
                 algorithm=algorithm, players=len(m.players), items=len(m.items))
        return Trained(model, len(m.players), len(m.items), len(triples))

    async def due(self, tenant_id: uuid.UUID, game_id: uuid.UUID, now: datetime) -> bool:
        """Whether the game has new interactions and its model is old or they are many."""
        last = await self._models.last_trained(tenant_id, game_id)
        new = await self._interactions.since(tenant_id, game_id, last)
        if new == 0:
            return False
        if last is None or new >= self._settings.recommender_retrain_interactions:
            return True
        return bool((now - last).total_seconds() >= self._settings.recommender_retrain_seconds)

    async def run(self) -> None:
        """Retrain every game that is due, every `recommender_check_seconds`, until cancelled; after
        each pass, say how long the stalest game's new interactions have waited for a model."""
        while True:
            stalest = 0.0
            for tenant_id, game_id in await self._interactions.games():
                try:
                    stalest = max(stalest, await self._pass_over(tenant_id, game_id))
                except Exception as exc:  # the wait could not be read (the database away): the next pass reads it
                    log.warning("model staleness not measured", tenant=str(tenant_id), game=str(game_id),
                                error=str(exc))
            STALEST_MODEL.set(stalest)
            await asyncio.sleep(self._settings.recommender_check_seconds)

    async def _pass_over(self, tenant_id: uuid.UUID, game_id: uuid.UUID) -> float:
        """Train the game if it is due; how long its interactions wait for a model afterwards."""
        now = datetime.now().astimezone()
        try:
            if await self.due(tenant_id, game_id, now):
                await self.train(tenant_id, game_id)
                TRAININGS.labels("trained").inc()
        except Exception:  # one game's failure must not stop the others' training
            TRAININGS.labels("failed").inc()
            log.warning("training failed; trying again later", tenant=str(tenant_id), game=str(game_id),
                        exc_info=True)
        return await self.waiting_s(tenant_id, game_id, now)

    async def waiting_s(self, tenant_id: uuid.UUID, game_id: uuid.UUID, now: datetime) -> float:
        """How long the game's interactions its model lacks have waited: since its last training, or
        since its first interaction when it was never trained; 0 when its model has them all."""
        last = await self._models.last_trained(tenant_id, game_id)
        first_new = await self._interactions.first_stored_after(tenant_id, game_id, last)
        if first_new is None:
            return 0.0
        return max(0.0, (now - (last or first_new)).total_seconds())
