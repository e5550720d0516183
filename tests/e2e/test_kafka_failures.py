"""Chaos on the Kafka bus: ingest and processor run as real processes with GAMEMETRICS_KAFKA_BOOTSTRAP
set, on a test database and a real broker. A processor is SIGKILLed mid-stream; two processors
share the partitions and one dies; the broker itself is SIGKILLed and restarted. Each test ends
with every acknowledged event stored exactly once and rollups that agree with the events table.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from gamemetrics.adapters.kafka import KafkaBus
from gamemetrics.adapters.kafka.local import LocalBroker
from gamemetrics.ports.bus import RAW_EVENTS, BusError
from gamemetrics.runtime import topic_partitions
from gamemetrics.services.processor.worker import GROUP_ID
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import CreatedKey
from tests.conftest import free_port
from tests.e2e.test_crash_recovery import (
    Client,
    Service,
    assert_stored_exactly_once,
    make_requests,
    stored_count,
    wait_until_ready,
)
from tests.kafka_broker import SCRAM_PASSWORD, SCRAM_USER, TlsBroker, kafka_settings, kcat, start_broker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BUS_PARTITIONS = 4
PROCESSOR_BATCH = 150
# Every bounded wait in this file gives up after this long and fails with what it saw.
PATIENCE_S = 60.0


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GAMEMETRICS_", "PROMETHEUS_"))}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a `gamemetrics` process use `settings`' database and Kafka."""
    env = {
        "GAMEMETRICS_DATABASE_URL": str(settings.database_url),
        "GAMEMETRICS_DATA_DIR": str(settings.data_dir),
        "GAMEMETRICS_BUS_PARTITIONS": str(settings.bus.partitions),
        "GAMEMETRICS_KAFKA_BOOTSTRAP": str(settings.kafka.bootstrap),
        "GAMEMETRICS_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "GAMEMETRICS_KAFKA_REPLICATION_FACTOR": str(settings.kafka.replication_factor),
        "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS": str(settings.kafka.min_insync_replicas),
        "GAMEMETRICS_KAFKA_DELIVERY_TIMEOUT_MS": str(settings.kafka.delivery_timeout_ms),
        "GAMEMETRICS_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "GAMEMETRICS_KAFKA_SECURITY_PROTOCOL": settings.kafka.security_protocol,
        "GAMEMETRICS_KAFKA_SASL_MECHANISM": settings.kafka.sasl_mechanism,
    }
    if settings.kafka.sasl_username and settings.kafka.sasl_password is not None:
        env["GAMEMETRICS_KAFKA_SASL_USERNAME"] = settings.kafka.sasl_username
        env["GAMEMETRICS_KAFKA_SASL_PASSWORD"] = settings.kafka.sasl_password.get_secret_value()
    if settings.kafka.ssl_ca_location is not None:
        env["GAMEMETRICS_KAFKA_SSL_CA_LOCATION"] = str(settings.kafka.ssl_ca_location)
    return env


def kafka_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`gamemetrics kafka init`, as an operator runs it before starting the services."""
    return subprocess.run([sys.executable, "-m", "gamemetrics.cli", "kafka", "init"], env={**_base_env(), **env},
                          capture_output=True, text=True, timeout=60)


@dataclass
class KafkaDeployment:
    """Ingest and processors as processes on one database and one Kafka topic prefix."""

    settings: Settings
    env: dict[str, str]
    tmp_path: Path
    base_url: str
    ingest: Service
    processors: list[Service] = field(default_factory=list)
    bus: KafkaBus | None = None

    def processor(self, **env: str) -> Service:
        service = Service("processor", {**self.env, **env}, self.tmp_path / f"processor-{len(self.processors)}.log")
        self.processors.append(service)
        return service

    async def start(self, *processors: Service) -> None:
        """Ingest and `processors` started; returns once ingest answers ready."""
        self.ingest.start()
        for processor in processors:
            processor.start()
        await wait_until_ready(self.ingest, self.base_url)

    async def raw_topic(self) -> tuple[int, int] | None:
        """(messages in the raw topic, of which the processor group has not committed); None before its first commit."""
        if self.bus is None:
            self.bus = KafkaBus(self.settings, topic_partitions(self.settings), client_id="test-lag")
        try:
            lags = [lag for lag in await self.bus.lag() if lag.group_id == GROUP_ID and lag.topic == RAW_EVENTS]
        except BusError:
            return None
        return (sum(lag.end for lag in lags), sum(lag.lag for lag in lags)) if lags else None

    def stop(self) -> None:
        self.ingest.stop()
        for processor in self.processors:
            processor.stop()


def deploy(settings: Settings, tmp_path: Path) -> KafkaDeployment:
    """Topics made by `gamemetrics kafka init`; services described, not yet started."""
    port = free_port()
    env = {
        **_base_env(),
        **settings_env(settings),
        "GAMEMETRICS_HOST": "127.0.0.1",
        "GAMEMETRICS_PORT": str(port),
        "GAMEMETRICS_PROCESSOR_BATCH_EVENTS": str(PROCESSOR_BATCH),
        "GAMEMETRICS_LOG_LEVEL": "warning",
    }
    done = kafka_init(env)
    assert done.returncode == 0, f"gamemetrics kafka init failed: {done.stderr}"
    return KafkaDeployment(settings, env, tmp_path, f"http://127.0.0.1:{port}",
                           Service("ingest", env, tmp_path / "ingest.log"))


@pytest.fixture
def on_kafka(settings: Settings, kafka_broker: LocalBroker, tmp_path: Path) -> Iterator[KafkaDeployment]:
    deployed = deploy(kafka_settings(settings, kafka_broker, bus_partitions=BUS_PARTITIONS), tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, *watched: Service) -> None:
    """Poll `check()` until true, bounded; the failure names what was awaited and shows the services' logs."""
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not await check():
        for service in watched:
            assert service.alive(), service.describe(f"exited while waiting for {what}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("\n".join([f"never reached: {what}", *(s.describe("log") for s in watched)]))
        await asyncio.sleep(0.1)


async def wait_until_drained(deployed: KafkaDeployment, accepted: int, *watched: Service) -> int:
    """Until the processor group has committed the whole raw topic, which holds every accepted event."""
    async def drained() -> bool:
        raw = await deployed.raw_topic()
        return raw is not None and raw[1] == 0 and raw[0] >= accepted

    await wait_for(drained, "the processor group to commit the whole raw topic", *watched)
    raw = await deployed.raw_topic()
    assert raw is not None
    return raw[0]


# ---------------------------------------------------------------- the tests


async def test_processor_killed_mid_stream_on_kafka_loses_and_doubles_nothing(
    on_kafka: KafkaDeployment, write_key: CreatedKey
) -> None:
    # Static membership, as a StatefulSet gives each pod: the restart takes its partitions back at once.
    processor = on_kafka.processor(GAMEMETRICS_KAFKA_GROUP_INSTANCE_ID="processor-0")
    await on_kafka.start(processor)
    client = Client(on_kafka.base_url, write_key.write_key)
    # The stream keeps arriving while the processor is killed and restarted, and ends a few requests
    # after the last restart (or at its bound on a slow machine).
    chaos_over = asyncio.Event()
    stream = asyncio.create_task(
        client.send_all(make_requests(seed=21, batches=100), pause=0.1, until=chaos_over, then=8)
    )

    url, tenant = on_kafka.settings.database_url or "", write_key.tenant_id
    kills = 0
    for _ in range(4):
        before = await stored_count(url, tenant)

        async def storing(before: int = before) -> bool:
            raw = await on_kafka.raw_topic()
            return await stored_count(url, tenant) > before and raw is not None and raw[1] > 0

        await wait_for(storing, "stored events moving with work still queued", processor)
        await asyncio.sleep(random.uniform(0.0, 0.3))
        processor.kill()
        kills += 1
        processor.start()
    chaos_over.set()

    await asyncio.wait_for(stream, PATIENCE_S)
    appended = await wait_until_drained(on_kafka, client.accepted_total, processor)

    assert kills == 4 and processor.starts == 5
    # Ingest was never killed and the broker never failed: each acknowledged request appended once.
    assert appended == client.accepted_total
    assert client.accepted_total > len(client.acknowledged), "no events were resent; the test proves less"
    await assert_stored_exactly_once(url, write_key, client.acknowledged)


def group_members(settings: Settings) -> dict[str, set[int]]:
    """Member id → partitions of the raw topic, as the group coordinator sees the processor group."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    group = settings.kafka.topic_prefix + GROUP_ID
    description = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    return {
        member.member_id: {tp.partition for tp in member.assignment.topic_partitions
                           if tp.topic == settings.kafka.topic_prefix + RAW_EVENTS}
        for member in description.members
    }


async def test_two_processors_share_the_partitions_and_one_takes_over_when_the_other_dies(
    on_kafka: KafkaDeployment, write_key: CreatedKey
) -> None:
    # Dynamic membership with a short session: the dead member is evicted two seconds after its last heartbeat.
    first = on_kafka.processor(GAMEMETRICS_KAFKA_SESSION_TIMEOUT_MS="2000")
    second = on_kafka.processor(GAMEMETRICS_KAFKA_SESSION_TIMEOUT_MS="2000")
    await on_kafka.start(first, second)
    client = Client(on_kafka.base_url, write_key.write_key)
    chaos_over = asyncio.Event()
    stream = asyncio.create_task(
        client.send_all(make_requests(seed=23, batches=100), pause=0.1, until=chaos_over, then=8)
    )
    settings = on_kafka.settings

    async def sharing() -> bool:
        members = await asyncio.to_thread(group_members, settings)
        return len(members) == 2 and all(members.values())

    await wait_for(sharing, "both processors owning partitions", first, second)
    url, tenant = settings.database_url or "", write_key.tenant_id
    before = await stored_count(url, tenant)

    async def storing() -> bool:
        return await stored_count(url, tenant) > before

    await wait_for(storing, "stored events moving", first, second)
    first.kill()

    async def taken_over() -> bool:
        members = await asyncio.to_thread(group_members, settings)
        return len(members) == 1 and next(iter(members.values())) == set(range(BUS_PARTITIONS))

    await wait_for(taken_over, "the surviving processor owning every partition", second)
    chaos_over.set()
    await asyncio.wait_for(stream, PATIENCE_S)
    appended = await wait_until_drained(on_kafka, client.accepted_total, second)

    assert appended == client.accepted_total
    await assert_stored_exactly_once(url, write_key, client.acknowledged)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of this test's own, free to be killed."""
    broker = start_broker(tmp_path_factory.mktemp("kafka-chaos"))
    try:
        yield broker
    finally:
        broker.stop()


async def test_broker_killed_mid_stream_ingest_answers_503_and_retrying_clients_lose_nothing(
    settings: Settings, own_broker: LocalBroker, tmp_path: Path, write_key: CreatedKey
) -> None:
    deployed = deploy(kafka_settings(settings, own_broker, bus_partitions=BUS_PARTITIONS,
                                     delivery_timeout_ms=3000), tmp_path)
    try:
        processor = deployed.processor()
        await deployed.start(processor)
        clients = [Client(deployed.base_url, write_key.write_key) for _ in range(2)]
        requests = list(make_requests(seed=29, batches=40))
        streams = [asyncio.create_task(c.send_all(requests[i::2], pause=0.1)) for i, c in enumerate(clients)]

        async def flowing() -> bool:
            return sum(c.requests_ok for c in clients) >= 8

        await wait_for(flowing, "requests being acknowledged", deployed.ingest, processor)
        own_broker.kill()

        async def refusing() -> bool:
            return sum(c.unavailable for c in clients) >= 2

        # Kafka is gone: ingest must answer 503 (never 200, never 500, never hang) until it is back.
        await wait_for(refusing, "ingest answering 503 while the broker is down", deployed.ingest, processor)
        acknowledged_while_down = sum(c.requests_ok for c in clients)
        assert not any(s.done() for s in streams), "the stream ended while the broker was down"
        own_broker.start()
        await asyncio.to_thread(own_broker.wait_ready)

        await asyncio.wait_for(asyncio.gather(*streams), PATIENCE_S)
        accepted = sum(c.accepted_total for c in clients)
        appended = await wait_until_drained(deployed, accepted, deployed.ingest, processor)

        assert sum(c.requests_ok for c in clients) > acknowledged_while_down, "nothing was sent after the restart"
        # Answers lost in the outage add copies to the log, never gaps; the sink stores each event once.
        assert appended >= accepted
        acknowledged = set().union(*(c.acknowledged for c in clients))
        assert acknowledged == {e["event_id"] for events in requests for e in events}
        await assert_stored_exactly_once(settings.database_url or "", write_key, acknowledged)
    finally:
        deployed.stop()


async def test_the_pipeline_runs_with_sasl_scram_and_a_wrong_password_gets_a_clear_error(
    settings: Settings, kafka_broker: LocalBroker, tmp_path: Path, write_key: CreatedKey
) -> None:
    secure = kafka_settings(
        settings, kafka_broker, bus_partitions=BUS_PARTITIONS, bootstrap=kafka_broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
        sasl_username=SCRAM_USER, sasl_password=SecretStr(SCRAM_PASSWORD),
    )
    wrong = settings_env(secure) | {"GAMEMETRICS_KAFKA_SASL_PASSWORD": "not-" + SCRAM_PASSWORD}
    refused = kafka_init(wrong)
    assert refused.returncode == 1, refused
    assert "Authentication failed" in refused.stderr and "invalid credentials" in refused.stderr, refused.stderr
    # A service with the wrong password is not ready, and says why.
    bad_bus = KafkaBus(secure.updated(kafka={"sasl_password": SecretStr("not-" + SCRAM_PASSWORD)}),
                       topic_partitions(secure))
    with pytest.raises(BusError, match="Authentication failed"):
        await bad_bus.ping()
    del bad_bus  # its client would keep retrying the broker with the wrong password

    deployed = deploy(secure, tmp_path)
    try:
        processor = deployed.processor()
        await deployed.start(processor)
        client = Client(deployed.base_url, write_key.write_key)
        await client.send_all(make_requests(seed=31, batches=4))
        await wait_until_drained(deployed, client.accepted_total, deployed.ingest, processor)
        await assert_stored_exactly_once(secure.database_url or "", write_key, client.acknowledged)

        # kcat sees the schema header on the raw topic (the trace headers: tests/e2e/test_trace.py).
        # It reads through the broker's PLAINTEXT listener: Debian 12's kcat links librdkafka 2.0.2,
        # whose SCRAM client-final message Kafka 4.x rejects (fixed in librdkafka 2.6.1;
        # confluent-kafka bundles a newer one).
        raw = subprocess.run(
            [kcat(), "-C", "-b", kafka_broker.bootstrap, "-t", secure.kafka.topic_prefix + RAW_EVENTS,
             "-o", "beginning", "-e", "-q", "-f", "%h\n"],
            capture_output=True, text=True, errors="replace", timeout=30,
        )
        assert raw.returncode == 0, raw.stderr
        headers = [dict(h.split("=", 1) for h in line.split(",")) for line in raw.stdout.splitlines() if line]
        assert len(headers) >= client.accepted_total and all(h["schema_version"] == "1" for h in headers)
    finally:
        deployed.stop()


async def test_the_pipeline_runs_over_tls_and_a_client_that_does_not_trust_the_ca_gets_a_clear_error(
    settings: Settings, kafka_tls_broker: TlsBroker, tmp_path: Path, write_key: CreatedKey
) -> None:
    secure = kafka_settings(
        settings, kafka_tls_broker.broker, bus_partitions=BUS_PARTITIONS, bootstrap=kafka_tls_broker.bootstrap,
        security_protocol="SSL", ssl_ca_location=kafka_tls_broker.ca,
    )
    # A client that trusts another CA refuses the broker's certificate, at once and saying so.
    distrusting = secure.updated(kafka={"ssl_ca_location": kafka_tls_broker.other_ca})
    refused = kafka_init(settings_env(distrusting))
    assert refused.returncode == 1, refused
    assert "certificate verify failed" in refused.stderr, refused.stderr
    bad_bus = KafkaBus(distrusting, topic_partitions(distrusting))
    with pytest.raises(BusError, match="certificate verify failed"):
        await bad_bus.ping()
    del bad_bus  # its client would keep retrying the handshake

    deployed = deploy(secure, tmp_path)
    try:
        processor = deployed.processor()
        await deployed.start(processor)
        client = Client(deployed.base_url, write_key.write_key)
        await client.send_all(make_requests(seed=41, batches=4))
        await wait_until_drained(deployed, client.accepted_total, deployed.ingest, processor)
        await assert_stored_exactly_once(secure.database_url or "", write_key, client.acknowledged)
    finally:
        deployed.stop()
