"""Tracing on for one test, its spans kept in memory (the SDK's own exporter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gamemetrics.observability import tracing


class Spans:
    """The spans the process finished while tracing was on."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()

    def finished(self) -> list[ReadableSpan]:
        tracing.flush()
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def spans() -> Iterator[Spans]:
    kept = Spans()
    assert tracing.configure_tracing(None, exporter=kept.exporter)
    yield kept
    tracing.shutdown_tracing()
