"""One trace from an ingest request to the processor's write and a consumer of the processed topic,
on each bus: the services run as real processes exporting OTLP/HTTP to a receiver on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gamemetrics.ports.bus import PROCESSED_EVENTS, RAW_EVENTS
from gamemetrics.runtime import Platform
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from tests.conftest import free_port
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, running_receiver

pytestmark = pytest.mark.timeout(180)

CALLER_TRACE = "5b8efff798038103d269b633813fc60c"
CALLER_SPAN = "eee19b7ec3c1b174"
PATIENCE_S = 60.0
SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP's SpanKind numbers


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    yield from running_receiver()


def _env(settings: Settings, receiver: OtlpReceiver, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEMETRICS_", "PROMETHEUS_", "OTEL_"))}
    env |= {
        "GAMEMETRICS_DATABASE_URL": str(settings.database_url), "GAMEMETRICS_DATA_DIR": str(settings.data_dir),
        "GAMEMETRICS_PORT": str(port), "GAMEMETRICS_LOG_LEVEL": "warning",
        "GAMEMETRICS_BUS_PARTITIONS": str(settings.bus.partitions),
        "GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fifth of a second, not the default five
    }
    if settings.kafka.bootstrap:
        env |= {
            "GAMEMETRICS_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
            "GAMEMETRICS_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "GAMEMETRICS_KAFKA_REPLICATION_FACTOR": str(settings.kafka.replication_factor),
            "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS": str(settings.kafka.min_insync_replicas),
            "GAMEMETRICS_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        }
    return env


def _serve(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", service], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _chain(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """The caller's trace so far: its ingest request, the send, the processor's write and the dashboard's read,
    each the child of the one before."""
    mine = [s for s in spans if s.trace_id == CALLER_TRACE]
    steps = [("request", lambda s: s.kind == SERVER), ("send", lambda s: s.kind == PRODUCER),
             ("write", lambda s: s.name == f"process {RAW_EVENTS}"),
             ("read", lambda s: s.name == f"process {PROCESSED_EVENTS}")]
    found: dict[str, ReceivedSpan] = {}
    parent = CALLER_SPAN
    for label, wanted in steps:
        child = next((s for s in mine if s.parent_span_id == parent and wanted(s)), None)
        if child is None:
            break
        found[label], parent = child, child.span_id
    return found


async def test_one_trace_runs_from_the_request_through_the_processor_to_a_processed_topic_consumer(
    bus_platform: Platform, bus_settings: Settings, receiver: OtlpReceiver, tmp_path: Path,
) -> None:
    store = TenancyStore(bus_platform.pool)
    game = await store.create_game(await store.create_tenant(f"studio-{uuid.uuid4().hex[:6]}"), "game")
    key = await store.create_write_key(game)
    port = free_port()
    env = _env(bus_settings, receiver, port)
    # The dashboard's live feed is the processed topic's consumer here; it shares ingest's process,
    # and its spans still name their own service.
    children = {name: _serve(name, env, tmp_path / f"{name}.log") for name in ("ingest,dashboard", "processor")}
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                for name, child in children.items():
                    assert child.poll() is None, f"{name} exited: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
                try:
                    if (await http.get(f"{base}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "ingest was not ready"
                time.sleep(0.2)
            event = {"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": "traced",
                     "timestamp": datetime.now(UTC).isoformat()}
            answer = await http.post(f"{base}/v1/events", json={"events": [event]}, headers={
                "Authorization": f"Bearer {key.write_key}", "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
            assert answer.status_code == 200, answer.text

        chain: dict[str, ReceivedSpan] = {}
        while len(chain) < 4:
            assert time.monotonic() < deadline + PATIENCE_S, (
                f"the trace has only {sorted(chain)}; received {len(receiver.received())} spans,"
                f" refused {receiver.refused}")
            time.sleep(0.2)
            chain = _chain(receiver.received())
    finally:
        _stop(children)

    assert chain["request"].service == "ingest" and chain["request"].name == "POST /v1/events"
    assert chain["request"].attributes["http.response.status_code"] == 200
    assert chain["send"].service == "ingest" and chain["send"].attributes["messaging.destination.name"] == RAW_EVENTS
    write = chain["write"]
    assert write.service == "processor" and write.kind == CONSUMER
    assert write.attributes["gamemetrics.events.stored"] == 1  # the write that stored this request's event
    assert write.attributes["messaging.consumer.group.name"] == "processor"
    read = chain["read"]
    assert read.service == "dashboard" and read.kind == CONSUMER
    assert read.attributes["messaging.consumer.group.name"] == bus_settings.dashboard.dashboard_live_group
