"""Prometheus metrics of the event path. Under `gamemetrics up` every process writes to one
multiprocess directory, so `/metrics` on the shared base URL shows the whole platform."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

EVENTS_ACCEPTED = Counter("gamemetrics_events_accepted_total", "Events accepted by ingest", ["endpoint"])
EVENTS_REJECTED = Counter("gamemetrics_events_rejected_total", "Events rejected by ingest", ["endpoint"])
REQUESTS_REFUSED = Counter(
    "gamemetrics_ingest_requests_refused_total", "Ingest requests refused as a whole", ["status"]
)
EVENTS_STORED = Counter("gamemetrics_events_stored_total", "Events stored by the processor")
EVENTS_DUPLICATE = Counter("gamemetrics_events_duplicate_total", "Events dropped as already stored")
EVENTS_DEAD_LETTERED = Counter("gamemetrics_events_dead_lettered_total", "Events sent to the DLQ")
INGEST_BATCH_SIZE = Histogram(
    "gamemetrics_ingest_batch_events", "Events per ingest request", buckets=(1, 10, 50, 100, 250, 500, 1000)
)
INGEST_LATENCY = Histogram(
    "gamemetrics_ingest_request_seconds", "Ingest request latency",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PROCESSOR_BATCH_SIZE = Histogram(
    "gamemetrics_processor_batch_records", "Records per processor batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
PROCESSOR_BATCH_LATENCY = Histogram(
    "gamemetrics_processor_batch_seconds", "Processor batch latency (decode to commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_FAILURES = Counter(
    "gamemetrics_consumer_failures_total", "Batches a consumer failed to take through (each is read again)",
    ["group"],
)

NOTIFICATION_ATTEMPTS = Counter(
    "gamemetrics_notification_attempts_total", "Provider calls of the notifier, by channel and outcome"
    " (sent, retry, failed)", ["channel", "outcome"],
)


def render() -> tuple[bytes, str]:
    """The exposition text: this process's metrics, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
