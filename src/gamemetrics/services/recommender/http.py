"""The recommender's routes: the catalogue, recommendations, similar items, feedback and weights."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.ports.cache import MISS, Memo
from gamemetrics.ports.vectors import VectorStoreError
from gamemetrics.services.recommender import metrics
from gamemetrics.services.recommender.catalogue import (
    Catalogue,
    InvalidItem,
    check_item_id,
    read_item,
    tenant_transaction,
)
from gamemetrics.services.recommender.interactions import ITEM_EVENTS, Interactions
from gamemetrics.services.recommender.models import Models
from gamemetrics.services.recommender.serving import Answer, Query, Recommender
from gamemetrics.services.recommender.training import NothingToTrain, Trainer
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_player
from gamemetrics.web.responses import json_response

READ, WRITE = "recommendations:read", "admin"
FALLBACK_HEADER = "X-Recommendations-Fallback"
MAX_N, PAGE_MAX = 100, 200
FEEDBACK_KINDS = ("shown", "clicked", "purchased")
SOURCES = ("collaborative", "similar", "popular")
QUERIES_KEPT = 1_000


def read_query(request: Request) -> Query:
    """n (1-100), category, min_price, max_price, country and platform of the query string; 400 when malformed."""
    params = request.query_params
    unknown = set(params) - {"n", "category", "min_price", "max_price", "country", "platform"}
    if unknown:
        raise ApiError(400, f"unknown query parameters: {', '.join(sorted(unknown))}")
    try:
        n = int(params.get("n", "10"))
    except ValueError:
        raise ApiError(400, "n must be a whole number from 1 to 100") from None
    if not 1 <= n <= MAX_N:
        raise ApiError(400, f"n must be from 1 to {MAX_N}, not {n}")
    prices: list[float | None] = []
    for name in ("min_price", "max_price"):
        raw = params.get(name)
        try:
            value = None if raw is None else float(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be a number") from None
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ApiError(400, f"{name} must be a number of at least 0")
        prices.append(value)
    if prices[0] is not None and prices[1] is not None and prices[0] > prices[1]:
        raise ApiError(400, "min_price is above max_price")
    return Query(n, params.get("category"), prices[0], prices[1], params.get("country"), params.get("platform"))


def answer_response(answer: Answer, extra: dict[str, Any]) -> Response:
    headers = {FALLBACK_HEADER: ",".join(answer.fallback)} if answer.fallback else None
    body = {**extra, "recommendation_id": answer.recommendation_id, "model_version": answer.model_version,
            "items": [{"item_id": p.item_id, "score": p.score, "source": p.source} for p in answer.items]}
    return json_response(body, headers=headers)


class Queries:
    """Queries read from query strings, kept by the string: most requests repeat a few of them."""

    def __init__(self, kept: Memo[bytes, Query]) -> None:
        self._kept = kept

    def read(self, request: Request) -> Query:
        raw: bytes = request.scope["query_string"]
        query = self._kept.get(raw)
        if query is MISS:
            query = read_query(request)  # a malformed one is refused every time it is sent
            self._kept.put(raw, query)
        return query


class Feedback(msgspec.Struct, forbid_unknown_fields=True):
    recommendation_id: uuid.UUID
    kind: str
    player_id: str
    item_id: str
    source: str = "collaborative"


class RecommenderRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, catalogue: Catalogue, interactions: Interactions,
                 models: Models, recommender: Recommender, trainer: Trainer) -> None:
        self._pool = pool
        self._queries = Queries(LocalMemo(QUERIES_KEPT))
        self._guard = guard
        self._catalogue = catalogue
        self._interactions = interactions
        self._models = models
        self._recommender = recommender
        self._trainer = trainer

    async def _game(self, request: Request, scope: str) -> tuple[uuid.UUID, uuid.UUID]:
        principal, game_id = await self._guard.tenant_game(request, scope)
        return principal.tenant_id, game_id

    @staticmethod
    def _item_id(request: Request) -> str:
        try:
            return check_item_id(request.path_params["item_id"])
        except InvalidItem as exc:
            raise ApiError(400, str(exc)) from None

    async def put_item(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, WRITE)
        item_id = self._item_id(request)
        try:
            item = read_item(msgspec.json.encode(await json_body(request)))
        except InvalidItem as exc:
            raise ApiError(422, str(exc)) from None
        created, row = await self._catalogue.put(tenant_id, game_id, item_id, item)
        await self._describe(tenant_id, game_id, item_id, row)
        return json_response(row, 201 if created else 200)

    async def _describe(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str,
                        row: dict[str, Any] | None) -> None:
        try:
            await self._models.describe(tenant_id, game_id, item_id, row)
        except VectorStoreError as exc:
            raise ApiError(503, f"the item is kept, but the vector store did not take the change: {exc};"
                                " send it again", headers={"Retry-After": "5"}) from None

    async def get_item(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        row = await self._catalogue.get(tenant_id, game_id, self._item_id(request))
        if row is None:
            raise ApiError(404, "no such item in this game")
        return json_response(row)

    async def delete_item(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, WRITE)
        item_id = self._item_id(request)
        if not await self._catalogue.delete(tenant_id, game_id, item_id):
            raise ApiError(404, "no such item in this game")
        await self._describe(tenant_id, game_id, item_id,
                             {"available": False, "category": None, "price": None})
        return Response(status_code=204)

    async def list_items(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        if not 1 <= limit <= PAGE_MAX:
            raise ApiError(400, f"limit must be from 1 to {PAGE_MAX}")
        page = await self._catalogue.page(tenant_id, game_id, after=request.query_params.get("after", ""),
                                          limit=limit, category=request.query_params.get("category"))
        return json_response({"items": page.items, "next_after": page.next_after})

    async def recommendations(self, request: Request) -> Response:
        started = time.perf_counter()
        tenant_id, game_id = await self._game(request, READ)
        player_id, query = path_player(request), self._queries.read(request)
        served = await self._recommender.recommend(tenant_id, game_id, player_id, query)
        if served.cached:
            metrics.CACHED_ANSWERS.inc()
            headers = None
        else:
            fallback = ",".join(served.fallback)
            metrics.RECOMMENDATIONS.labels(kind="player", cached="no", fallback=fallback).inc()
            headers = {FALLBACK_HEADER: fallback} if fallback else None
        metrics.LATENCY.observe(time.perf_counter() - started)
        return Response(served.body, media_type="application/json", headers=headers)

    async def similar(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        item_id, query = self._item_id(request), read_query(request)
        answer = await self._recommender.similar(tenant_id, game_id, item_id, query)
        metrics.RECOMMENDATIONS.labels(kind="similar", cached="n/a", fallback=",".join(answer.fallback)).inc()
        return answer_response(answer, {"item_id": item_id})

    async def feedback(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        try:
            given = msgspec.convert(await json_body(request), Feedback)
        except msgspec.ValidationError as exc:
            raise ApiError(422, f"not a feedback document: {exc}") from None
        if given.kind not in FEEDBACK_KINDS:
            raise ApiError(422, f"kind must be one of {', '.join(FEEDBACK_KINDS)}")
        if given.source not in SOURCES:
            raise ApiError(422, f"source must be one of {', '.join(SOURCES)}")
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute(
                "INSERT INTO rec_feedback (tenant_id, game_id, recommendation_id, kind, item_id, player_id, source)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant_id, game_id, given.recommendation_id, given.kind, given.item_id, given.player_id,
                 given.source))
        if cur.rowcount:  # a repeated report counts once
            metrics.FEEDBACK.labels(kind=given.kind, source=given.source).inc()
        return json_response({"recorded": bool(cur.rowcount)}, 201 if cur.rowcount else 200)

    async def get_weights(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, READ)
        return json_response({"weights": await self._interactions.weights(tenant_id, game_id)})

    async def put_weights(self, request: Request) -> Response:
        tenant_id, game_id = await self._game(request, WRITE)
        body = await json_body(request)
        weights = body.get("weights") if isinstance(body, dict) else None
        if not isinstance(weights, dict) or not weights or set(weights) - set(ITEM_EVENTS) or not all(
                isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w <= 1000 for w in weights.values()):
            raise ApiError(422, f'send {{"weights": {{event type: 0-1000}}}} for event types of'
                                f' {", ".join(ITEM_EVENTS)}')
        await self._interactions.set_weights(tenant_id, game_id, {k: float(v) for k, v in weights.items()})
        return json_response({"weights": await self._interactions.weights(tenant_id, game_id)})

    async def train(self, request: Request) -> Response:
        """Train and switch to a new version now (the schedule does the same when it is due)."""
        tenant_id, game_id = await self._game(request, WRITE)
        algorithm = request.query_params.get("algorithm")
        if algorithm not in (None, "als", "bpr"):
            raise ApiError(400, "algorithm is als or bpr")
        try:
            trained = await self._trainer.train(tenant_id, game_id, algorithm=algorithm)  # type: ignore[arg-type]
        except NothingToTrain as exc:
            raise ApiError(409, str(exc)) from None
        return json_response({"model_version": trained.model.version, "players": trained.players,
                              "items": trained.items, "interactions": trained.interactions}, 201)

    def routes(self) -> list[BaseRoute]:
        item = "/v1/games/{game_id}/items/{item_id}"
        return [
            # First: the router tries routes in order, and this is the one asked most.
            Route("/v1/games/{game_id}/players/{player_id}/recommendations", self.recommendations, methods=["GET"]),
            Route("/v1/games/{game_id}/items", self.list_items, methods=["GET"]),
            Route(item, self.get_item, methods=["GET"]),
            Route(item, self.put_item, methods=["PUT"]),
            Route(item, self.delete_item, methods=["DELETE"]),
            Route(item + "/similar", self.similar, methods=["GET"]),
            Route("/v1/games/{game_id}/recommendations/feedback", self.feedback, methods=["POST"]),
            Route("/v1/games/{game_id}/recommendations/weights", self.get_weights, methods=["GET"]),
            Route("/v1/games/{game_id}/recommendations/weights", self.put_weights, methods=["PUT"]),
            Route("/v1/games/{game_id}/recommendations/train", self.train, methods=["POST"]),
        ]
