"""The ingest HTTP routes: native, Segment-compatible and original GameMetrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

from gamemetrics.events.envelope import Source
from gamemetrics.events.schema import EventBatch
from gamemetrics.observability import metrics
from gamemetrics.services.ingest import legacy, segment
from gamemetrics.services.ingest.accept import Acceptor, Outcome
from gamemetrics.services.ingest.auth import KeyResolver, RevokedKey, key_from_headers
from gamemetrics.services.ingest.body import read_json_body
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.services.ingest.refusals import BY_STATUS, RefusalCounts
from gamemetrics.settings import Settings
from gamemetrics.tenancy.keys import WriteKey
from gamemetrics.web.errors import ApiError
from gamemetrics.web.refusals import UNAVAILABLE, exception_handlers
from gamemetrics.web.responses import json_response

_batch_decoder = msgspec.json.Decoder(EventBatch)


class Timed:
    """Observes each request's time in the ingest latency histogram, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            await self._app(scope, receive, send)
        finally:
            metrics.INGEST_LATENCY.observe(time.perf_counter() - started)


def _count(refusal: ApiError) -> None:
    metrics.REQUESTS_REFUSED.labels(str(refusal.status)).inc()


def refusals() -> Mapping[type[Exception], HTTPExceptionHandler]:
    """The ingest app's exception handlers: `{"error": ...}` bodies, each refusal counted; any
    database error while a key is looked up means nothing was accepted."""
    return exception_handlers(unavailable="storage is unavailable; nothing was accepted, retry later",
                              unavailable_errors=(psycopg.Error, *UNAVAILABLE), refused=_count)


class IngestApp:
    """Builds the routes from the services they need (no global clients)."""

    def __init__(self, settings: Settings, keys: KeyResolver, acceptor: Acceptor, refusals: RefusalCounts) -> None:
        self._settings = settings
        self._keys = keys
        self._acceptor = acceptor
        self._refusals = refusals

    async def _key(self, request: Request) -> WriteKey:
        """The request's write key, kept on the request so that a later refusal is counted under its game."""
        key = await self._keys.resolve(key_from_headers(request.headers))
        request.state.write_key = key
        return key

    def _counted(self, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """`endpoint`, its whole-request refusals counted under the key's game and the refusal's reason."""
        async def counted(request: Request) -> Response:
            try:
                return await endpoint(request)
            except IngestError as refusal:
                key = refusal.key if isinstance(refusal, RevokedKey) else getattr(request.state, "write_key", None)
                reason = BY_STATUS.get(refusal.status)
                if key is not None and reason is not None:
                    self._refusals.add(key.tenant_id, key.game_id, reason, events=refusal.events)
                raise
        return counted

    async def _body(self, request: Request) -> bytes:
        limits = self._settings.ingest
        return await read_json_body(request, max_bytes=limits.max_body_bytes, max_inflated=limits.max_inflated_bytes)

    async def native(self, request: Request, *, source: Source) -> Response:
        key = await self._key(request)
        if source == "import" and not key.allow_import:
            raise IngestError(403, "this write key may not import history; create one with --allow-import")
        body = await self._body(request)
        try:
            batch = _batch_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as exc:
            raise IngestError(400, f'body must be {{"events": [...]}}: {exc}') from None
        outcome = await self._acceptor.accept(
            key, list(enumerate(batch.events)), source=source, endpoint=request.url.path
        )
        return json_response(_answer(outcome))

    async def events(self, request: Request) -> Response:
        return await self.native(request, source="live")

    async def import_(self, request: Request) -> Response:
        return await self.native(request, source="import")

    async def segment(self, request: Request) -> Response:
        key = await self._key(request)
        kind = request.url.path.rsplit("/", 1)[-1]
        items, rejected = segment.convert(await self._body(request), kind)
        outcome = await self._acceptor.accept(
            key, items, source="live", endpoint=request.url.path, prior_rejections=rejected
        )
        return json_response({"success": True, **_answer(outcome)})

    async def legacy_event(self, request: Request) -> Response:
        key = await self._key(request)
        event, game_id = legacy.convert(await self._body(request))
        if game_id != key.game_id:
            raise IngestError(403, f"game_id {game_id} is not the game of this write key")
        outcome = await self._acceptor.accept(key, [(0, event)], source="live", endpoint=request.url.path)
        if outcome.rejected:
            return json_response({"status": "error", "detail": outcome.rejected[0].error}, 400)
        return json_response({"status": "success", "event_id": str(outcome.event_ids[0])})

    def routes(self) -> list[Route]:
        timed = [Middleware(Timed)]
        return [
            *(Route(path, self._counted(endpoint), methods=["POST"], middleware=timed) for path, endpoint in (
                ("/v1/events", self.events), ("/v1/import", self.import_), ("/v1/batch", self.segment),
                ("/v1/track", self.segment), ("/v1/identify", self.segment), ("/api/v1/events", self.legacy_event),
            )),
        ]


def _answer(outcome: Outcome) -> dict[str, object]:
    return {"accepted": outcome.accepted, "rejected": outcome.rejected}


def build_app(ingest: IngestApp) -> Starlette:
    """The ingest service as an ASGI app."""
    return Starlette(routes=ingest.routes(), exception_handlers=refusals())
