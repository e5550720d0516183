"""Tracing: off makes nothing; on, request spans continue the caller's trace, a consumed batch has one
span per sender in that sender's trace, and logs inside a span carry its ids."""

from __future__ import annotations

import json

import pytest
import structlog
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gamemetrics.observability import tracing
from gamemetrics.observability.logging import configure_logging
from gamemetrics.ports.bus import RAW_EVENTS, Record
from tests.tracing import Spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _record(offset: int, traceparent: str | None) -> Record:
    return Record(RAW_EVENTS, 0, offset, b"k", b"{}", {"traceparent": traceparent} if traceparent else {})


def test_off_nothing_is_made_and_no_header_is_written() -> None:
    assert not tracing.enabled()
    assert tracing.batch_spans([_record(0, PARENT)], group="g", topics=[RAW_EVENTS]) is None
    assert tracing.carrier_after({"traceparent": PARENT}) == {}
    assert not tracing.configure_tracing(None)


def test_a_batch_has_one_span_per_sender_in_its_trace_and_one_new_trace_for_the_rest(spans: Spans) -> None:
    records = [_record(0, PARENT), _record(1, PARENT), _record(2, OTHER), _record(3, None), _record(4, "garbage")]
    batch = tracing.batch_spans(records, group="processor", topics=[RAW_EVENTS])
    assert batch is not None
    with batch.handling():
        assert tracing.current_batch() is batch
        carriers = [tracing.carrier_after(r.headers) for r in records]
        batch.set_attributes({"gamemetrics.events.stored": 5})
    assert tracing.current_batch() is None
    finished = spans.finished()
    assert len(finished) == 4  # two senders, one without a trace, one whose header is unusable
    by_trace = {format(s.context.trace_id, "032x"): s for s in finished}
    mine = by_trace[TRACE]
    assert mine.parent is not None and format(mine.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert mine.kind is SpanKind.CONSUMER and mine.name == f"process {RAW_EVENTS}"
    assert mine.attributes is not None and mine.attributes["messaging.batch.message_count"] == 2
    assert mine.attributes["messaging.consumer.group.name"] == "processor"
    assert mine.attributes["gamemetrics.events.stored"] == 5
    # A derived message carries the sender's span of this batch; the two records of one sender share it.
    assert carriers[0] is carriers[1]
    assert carriers[0]["traceparent"] == f"00-{TRACE}-{mine.context.span_id:016x}-01"
    assert carriers[2]["traceparent"].split("-")[1] == OTHER.split("-")[1]
    roots = [s for s in finished if s.parent is None]
    assert len(roots) == 2 and carriers[3]["traceparent"] != carriers[4]["traceparent"]


def test_a_failed_batch_ends_its_spans_with_the_error(spans: Spans) -> None:
    batch = tracing.batch_spans([_record(0, PARENT)], group="g", topics=[RAW_EVENTS])
    assert batch is not None
    with pytest.raises(RuntimeError), batch.handling():
        raise RuntimeError("the store is away")
    (span,) = spans.finished()
    assert span.status.status_code is StatusCode.ERROR and "the store is away" in (span.status.description or "")
    assert [e.name for e in span.events] == ["exception"]


def _app() -> Starlette:
    """Two routes behind the request spans of a service called ingest."""

    async def hello(request: Request) -> PlainTextResponse:
        structlog.get_logger("test").info("handled")
        return PlainTextResponse("hi")

    async def busy(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=503)

    return Starlette(routes=[Route("/v1/hello/{name}", hello), Route("/v1/busy", busy)],
                     middleware=[Middleware(tracing.RequestSpans, service="ingest")])


def test_a_request_span_continues_the_callers_trace_and_logs_carry_its_ids(
    spans: Spans, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", service="ingest")
    with TestClient(_app()) as client:
        assert client.get("/v1/hello/ada", headers={"traceparent": PARENT}).status_code == 200
        assert client.get("/v1/busy").status_code == 503
    by_name = {s.name: s for s in spans.finished()}
    hello = by_name["GET /v1/hello/{name}"]
    assert hello.kind is SpanKind.SERVER and format(hello.context.trace_id, "032x") == TRACE
    assert hello.resource.attributes["service.name"] == "ingest"
    assert hello.attributes is not None and hello.attributes["http.response.status_code"] == 200
    busy = by_name["GET /v1/busy"]
    assert busy.parent is None and busy.status.status_code is StatusCode.ERROR
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"handled"' in line]
    assert [(line["trace_id"], line["span_id"]) for line in lines] == [(TRACE, f"{hello.context.span_id:016x}")]
