"""OpenTelemetry tracing: one trace follows an event from its ingest request through the bus to
the processor's write and on to every consumer of the processed topic.

Off until `configure_tracing` is given an OTLP endpoint; while off nothing here makes a span or
reads or writes a header, so an untraced process pays one flag check per request or batch. On,
each service of the process has a tracer provider of its own (its `service.name` is the registry's
name, so `serve ingest,dashboard` still tells its services apart), all feeding one batch span
processor and one OTLP/HTTP exporter. The context crosses the bus in W3C `traceparent` headers,
which both adapters carry.

A consumed batch holds the events of many requests. Its spans are children, not links: the loop
makes one span per sender's context in the batch (`BatchSpans`), a child of that context, so a
trace viewer shows each request's events being stored and consumed inside the request's own
trace; the messages a sink derives from a record carry its sender's span (`carrier_after`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextvars import Context, ContextVar, copy_context
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context as TraceContext
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gamemetrics.ports.bus import Record

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()  # W3C whatever OTEL_PROPAGATORS says: the bus's contract
_service: ContextVar[str] = ContextVar("gamemetrics_service", default="gamemetrics")
_batch: ContextVar[BatchSpans | None] = ContextVar("gamemetrics_batch_spans", default=None)


class _Tracing:
    """The providers of this process's services, sharing one span processor and exporter."""

    def __init__(self, exporter: SpanExporter) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.processor = BatchSpanProcessor(exporter)
        self._tracers: dict[str, Tracer] = {}

    def tracer(self, service: str) -> Tracer:
        found = self._tracers.get(service)
        if found is None:
            # The SDK is imported only once tracing is on: an untraced process never loads it.
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                                "service.namespace": "gamemetrics"}))
            provider.add_span_processor(self.processor)
            found = self._tracers[service] = provider.get_tracer("gamemetrics")
        return found


_tracing: _Tracing | None = None


def configure_tracing(traces_url: str | None, *, exporter: SpanExporter | None = None) -> bool:
    """Export spans to `traces_url` (OTLP/HTTP protobuf), or to `exporter`; neither leaves tracing off.

    Whether tracing is on afterwards."""
    global _tracing
    shutdown_tracing()
    if exporter is None and traces_url:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url)
    _tracing = _Tracing(exporter) if exporter is not None else None
    return _tracing is not None


def shutdown_tracing() -> None:
    """Export the spans still queued and turn tracing off."""
    global _tracing
    if _tracing is not None:
        _tracing.processor.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        _tracing = None


def flush() -> None:
    """Export the spans queued so far."""
    if _tracing is not None:
        _tracing.processor.force_flush()


def enabled() -> bool:
    """Whether spans are being made in this process."""
    return _tracing is not None


def tracer() -> Tracer:
    """The tracer of the service running the caller (see `context_of`); a no-op one when off."""
    if _tracing is None:
        return trace.NoOpTracer()
    return _tracing.tracer(_service.get())


def context_of(service: str) -> Context:
    """A copy of the caller's context in which spans belong to `service` (for its worker tasks)."""
    context = copy_context()
    context.run(_service.set, service)
    return context


def inject(headers: dict[str, str]) -> None:
    """Put the current span's context into `headers` (W3C)."""
    _W3C.inject(headers)


@contextlib.contextmanager
def producer_span(topic: str, messages: int) -> Iterator[Span]:
    """A current producer span around sending `messages` to `topic`."""
    with tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes={
        "messaging.operation.type": "send", "messaging.destination.name": topic,
        "messaging.batch.message_count": messages,
    }) as span:
        yield span


def _extract(headers: Mapping[str, str]) -> TraceContext:
    """The sender's context in `headers`, or an empty one (a new trace) when they carry none that is valid."""
    return _W3C.extract(headers, context=TraceContext())


def log_trace_ids(logger: object, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's trace and span ids on every log line inside one."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event.setdefault("trace_id", format(span.trace_id, "032x"))
        event.setdefault("span_id", format(span.span_id, "016x"))
    return event


class RequestSpans:
    """A server span for each HTTP request of `service`, continuing the caller's `traceparent`."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracing is None:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        method = scope["method"]
        token = _service.set(self.service)
        span = tracer().start_span(method, context=_extract(carrier), kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme", "http")})

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
                await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.end()
            _service.reset(token)


class BatchSpans:
    """The consumer spans of one batch: one per sender's context among its records, each its child,
    and one new trace for the records that came without one."""

    def __init__(self, records: Sequence[Record], *, group: str, topics: Sequence[str]) -> None:
        counts: dict[str, int] = {}
        for record in records:
            parent = record.headers.get(TRACEPARENT, "")
            counts[parent] = counts.get(parent, 0) + 1
        name = f"process {', '.join(topics)}"
        traced = tracer()
        self._spans: dict[str, Span] = {
            parent: traced.start_span(name, context=_extract({TRACEPARENT: parent}) if parent else TraceContext(),
                                      kind=SpanKind.CONSUMER, attributes={
                                          "messaging.operation.type": "process",
                                          "messaging.destination.name": ", ".join(topics),
                                          "messaging.consumer.group.name": group,
                                          "messaging.batch.message_count": count,
                                          "gamemetrics.batch.records": len(records)})
            for parent, count in counts.items()
        }
        self._carriers: dict[str, dict[str, str]] = {}

    def carrier_after(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The trace headers of a message derived from a record with `headers`: its sender's span."""
        parent = headers.get(TRACEPARENT, "")
        carrier = self._carriers.get(parent)
        if carrier is None:
            span = self._spans.get(parent)
            carrier = self._carriers[parent] = {}
            if span is not None:
                _W3C.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def set_attributes(self, attributes: Mapping[str, int | str]) -> None:
        """Say on every span of the batch what handling it did."""
        for span in self._spans.values():
            span.set_attributes(attributes)

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """The batch's spans while it is handled: ended when it is, with the error if it failed."""
        token = _batch.set(self)
        # With one sender its span is current too, so logs of the handling carry its trace id.
        only = next(iter(self._spans.values())) if len(self._spans) == 1 else None
        current = (trace.use_span(only, end_on_exit=False, record_exception=False, set_status_on_exception=False)
                   if only is not None else contextlib.nullcontext())
        try:
            with current:
                yield
        except BaseException as exc:
            for span in self._spans.values():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            _batch.reset(token)
            for span in self._spans.values():
                span.end()


def batch_spans(records: Sequence[Record], *, group: str, topics: Sequence[str]) -> BatchSpans | None:
    """The spans of a batch being handled, or None while tracing is off."""
    return BatchSpans(records, group=group, topics=topics) if _tracing is not None else None


def current_batch() -> BatchSpans | None:
    """The spans of the batch the caller is handling, if tracing is on."""
    return _batch.get()


def carrier_after(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The trace headers for a message derived from a record with `headers` (empty while off)."""
    spans = _batch.get()
    return spans.carrier_after(headers) if spans is not None else {}
