"""The session broker's advertised listener at the chaos proxy: a client bootstrapped there makes
every connection through it, so the proxy's latency, blackhole and cut reach a real Kafka client;
and the consumer-group probe of the partition experiment counts a real group's members."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from gamemetrics.adapters.kafka.local import LocalBroker
from gamemetrics.chaos import probes
from gamemetrics.chaos.proxy import Proxy


def new_topic(broker: LocalBroker) -> str:
    topic = f"proxied-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    return topic


def send(producer: Producer, topic: str, timeout: float) -> tuple[float, str | None]:
    """Seconds until the broker acknowledged one message, and the delivery error if any."""
    outcome: list[str | None] = []
    began = time.monotonic()
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: outcome.append(None if err is None else str(err)))
    producer.flush(timeout)
    return time.monotonic() - began, outcome[0] if outcome else "no delivery report"


def test_every_connection_of_a_client_bootstrapped_at_the_proxy_goes_through_it(
        kafka_broker: LocalBroker, kafka_proxy: Proxy) -> None:
    topic = new_topic(kafka_broker)
    producer = Producer({"bootstrap.servers": kafka_proxy.address, "acks": "all", "linger.ms": 0,
                         "message.timeout.ms": 3000, "log_level": 0})
    took, error = send(producer, topic, 10)
    assert error is None, error
    assert kafka_proxy.connections >= 1 and kafka_proxy.forwarded_bytes > 0
    metadata = producer.list_topics(timeout=5)
    assert [b.port for b in metadata.brokers.values()] == [kafka_proxy.port]  # advertised at the proxy

    kafka_proxy.set_latency(300, 50)
    slow, error = send(producer, topic, 10)
    assert error is None and slow >= 0.5, (slow, error)  # the request and its answer, 300 ms each
    kafka_proxy.set_latency(0)

    kafka_proxy.set_blackhole(True)
    _, error = send(producer, topic, 10)
    assert error is not None and "timed out" in error.lower(), error
    kafka_proxy.set_blackhole(False)
    quick, error = send(producer, topic, 30)
    assert error is None, error

    kafka_proxy.set_cut(True)
    _, error = send(producer, topic, 10)
    assert error is not None, "a cut proxy let a message through"
    kafka_proxy.set_cut(False)
    _, error = send(producer, topic, 30)
    assert error is None, error


def test_group_members_counts_a_real_group_and_reports_a_member_too_many(kafka_broker: LocalBroker,
                                                                        tmp_path: Path) -> None:
    (tmp_path / "data" / "kafka").mkdir(parents=True)
    (tmp_path / "data" / "kafka" / "running.json").write_text(
        json.dumps({"bootstrap": kafka_broker.bootstrap, "pid": os.getpid()}))
    run = {"run_dir": str(tmp_path / "run")}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "platform.json").write_text(json.dumps({"data_dir": str(tmp_path / "data")}))
    topic, group = new_topic(kafka_broker), f"probe-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group, "log_level": 0,
                         "session.timeout.ms": 6000})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer joined no group"
        verdict = probes.group_members(run, group=group, members=1)
        assert probes.held(verdict), verdict
        verdict = probes.group_members(run, group=group, members=2)
        assert not probes.held(verdict)
        assert verdict["violations"][0].startswith(f"group {group} has 1 members, not 2")
    finally:
        with contextlib.suppress(KafkaException):
            consumer.close()
    (tmp_path / "data" / "kafka" / "running.json").unlink()
    assert probes.group_members(run, group=group)["violations"] == ["the platform runs no local Kafka broker"]
