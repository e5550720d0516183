"""The ingest HTTP routes: native, Segment-compatible and original GameMetrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
import psycopg
import structlog
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.events.schema import EventBatch
from gamemetrics.observability import metrics
from gamemetrics.services.ingest import legacy, segment
from gamemetrics.services.ingest.accept import Acceptor, Outcome
from gamemetrics.services.ingest.auth import KeyResolver, key_from_headers
from gamemetrics.services.ingest.body import read_json_body
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.settings import Settings

log = structlog.get_logger("ingest")
_json = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(EventBatch)

Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json", headers=headers)


def guarded(handler: Handler) -> Handler:
    """Turn refusals into their status, and anything unexpected into a logged 500 that says so."""

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await handler(request)
        except IngestError as exc:
            metrics.REQUESTS_REFUSED.labels(str(exc.status)).inc()
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
            return json_response({"error": exc.message}, exc.status, headers)
        except (psycopg.Error, PoolTimeout) as exc:  # key lookup while the database is away
            metrics.REQUESTS_REFUSED.labels("503").inc()
            log.warning("database unavailable", error=str(exc))
            return json_response(
                {"error": "storage is unavailable; nothing was accepted, retry later"}, 503, {"Retry-After": "1"}
            )
        finally:
            metrics.INGEST_LATENCY.observe(time.perf_counter() - started)

    return wrapper


class IngestApp:
    """Builds the routes from the services they need (no global clients)."""

    def __init__(self, settings: Settings, keys: KeyResolver, acceptor: Acceptor) -> None:
        self._settings = settings
        self._keys = keys
        self._acceptor = acceptor

    async def _body(self, request: Request) -> bytes:
        return await read_json_body(
            request, max_bytes=self._settings.max_body_bytes, max_inflated=self._settings.max_inflated_bytes
        )

    async def native(self, request: Request, *, source: str) -> Response:
        key = await self._keys.resolve(key_from_headers(request.headers))
        if source == "import" and not key.allow_import:
            raise IngestError(403, "this write key may not import history; create one with --allow-import")
        body = await self._body(request)
        try:
            batch = _batch_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as exc:
            raise IngestError(400, f'body must be {{"events": [...]}}: {exc}') from None
        outcome = await self._acceptor.accept(
            key, list(enumerate(batch.events)), source=source, endpoint=request.url.path  # type: ignore[arg-type]
        )
        return json_response(_answer(outcome))

    async def events(self, request: Request) -> Response:
        return await self.native(request, source="live")

    async def import_(self, request: Request) -> Response:
        return await self.native(request, source="import")

    async def segment(self, request: Request) -> Response:
        key = await self._keys.resolve(key_from_headers(request.headers))
        kind = request.url.path.rsplit("/", 1)[-1]
        items, rejected = segment.convert(await self._body(request), kind)
        outcome = await self._acceptor.accept(
            key, items, source="live", endpoint=request.url.path, prior_rejections=rejected
        )
        return json_response({"success": True, **_answer(outcome)})

    async def legacy_event(self, request: Request) -> Response:
        key = await self._keys.resolve(key_from_headers(request.headers))
        event, game_id = legacy.convert(await self._body(request))
        if game_id != key.game_id:
            raise IngestError(403, f"game_id {game_id} is not the game of this write key")
        outcome = await self._acceptor.accept(key, [(0, event)], source="live", endpoint=request.url.path)
        if outcome.rejected:
            return json_response({"status": "error", "detail": outcome.rejected[0].error}, 400)
        return json_response({"status": "success", "event_id": str(outcome.event_ids[0])})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/events", guarded(self.events), methods=["POST"]),
            Route("/v1/import", guarded(self.import_), methods=["POST"]),
            Route("/v1/batch", guarded(self.segment), methods=["POST"]),
            Route("/v1/track", guarded(self.segment), methods=["POST"]),
            Route("/v1/identify", guarded(self.segment), methods=["POST"]),
            Route("/api/v1/events", guarded(self.legacy_event), methods=["POST"]),
        ]


def _answer(outcome: Outcome) -> dict[str, object]:
    return {"accepted": outcome.accepted, "rejected": outcome.rejected}


def build_app(ingest: IngestApp) -> Starlette:
    """The ingest service as an ASGI app."""
    return Starlette(routes=ingest.routes())
