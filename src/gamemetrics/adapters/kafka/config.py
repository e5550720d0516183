"""librdkafka configuration from the platform's settings, and logical ↔ physical names."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gamemetrics.settings import Settings

# librdkafka's own log lines (connection failures, authentication errors) go to this logger.
client_log = logging.getLogger("gamemetrics.kafka")


@dataclass(frozen=True, slots=True)
class Names:
    """Topic and group names on the cluster: the platform's names behind an optional prefix.

    A prefix lets several environments (or test runs) share one cluster without sharing data.
    """

    prefix: str = ""

    def topic(self, logical: str) -> str:
        return self.prefix + logical

    def group(self, logical: str) -> str:
        return self.prefix + logical

    def logical_topic(self, physical: str) -> str | None:
        """The platform's name of a cluster topic, None when the topic is not one of ours."""
        return physical[len(self.prefix):] if physical.startswith(self.prefix) else None

    def logical_group(self, physical: str) -> str | None:
        return physical[len(self.prefix):] if physical.startswith(self.prefix) else None


def common_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """Connection and security settings every client shares."""
    if not settings.kafka.bootstrap:
        raise ValueError("GAMEMETRICS_KAFKA_BOOTSTRAP is not set")
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": client_id,
        "security.protocol": settings.kafka.security_protocol,
        "logger": client_log,
        # Loopback-only test brokers and IPv4-only clusters: do not wait on IPv6 attempts first.
        "broker.address.family": "any",
    }
    if settings.kafka.security_protocol.startswith("SASL"):
        if not settings.kafka.sasl_username or settings.kafka.sasl_password is None:
            raise ValueError(
                f"GAMEMETRICS_KAFKA_SECURITY_PROTOCOL={settings.kafka.security_protocol} needs"
                " GAMEMETRICS_KAFKA_SASL_USERNAME and GAMEMETRICS_KAFKA_SASL_PASSWORD"
            )
        config["sasl.mechanism"] = settings.kafka.sasl_mechanism
        config["sasl.username"] = settings.kafka.sasl_username
        config["sasl.password"] = settings.kafka.sasl_password.get_secret_value()
    if settings.kafka.security_protocol.endswith("SSL"):
        if settings.kafka.ssl_ca_location:
            config["ssl.ca.location"] = str(settings.kafka.ssl_ca_location)
        if settings.kafka.ssl_certificate_location:
            config["ssl.certificate.location"] = str(settings.kafka.ssl_certificate_location)
        if settings.kafka.ssl_key_location:
            config["ssl.key.location"] = str(settings.kafka.ssl_key_location)
        if settings.kafka.ssl_key_password is not None:
            config["ssl.key.password"] = settings.kafka.ssl_key_password.get_secret_value()
    return config


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """Idempotent producer, acknowledged by every in-sync replica, batched and compressed."""
    return {
        **common_config(settings, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.kafka.linger_ms,
        "compression.type": settings.kafka.compression,
        # Every message gets a delivery report within this time, so a send never waits unbounded.
        "message.timeout.ms": settings.kafka.delivery_timeout_ms,
        "request.timeout.ms": min(30_000, max(1_000, settings.kafka.delivery_timeout_ms // 2)),
        # The Java clients' partitioner: a key lands in the same partition whichever client writes it.
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 256 * 1024,
    }


def consumer_config(settings: Settings, client_id: str, group_id: str) -> dict[str, Any]:
    """A group member that commits by hand, after the sink, and starts from the beginning of new groups."""
    config: dict[str, Any] = {
        **common_config(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(100, settings.kafka.session_timeout_ms // 3),
        "enable.partition.eof": False,
        # Bound what librdkafka prefetches per partition: backpressure, not an unbounded buffer.
        "queued.max.messages.kbytes": 8 * 1024,
        "fetch.wait.max.ms": 50,
    }
    if settings.kafka.group_instance_id:
        config["group.instance.id"] = settings.kafka.group_instance_id
    return config


def topic_config(settings: Settings) -> dict[str, str]:
    """Per-topic settings `kafka init` creates topics with and checks existing ones against."""
    return {
        "min.insync.replicas": str(settings.kafka.min_insync_replicas),
        "retention.ms": str(int(settings.kafka.retention_hours * 3600 * 1000)),
    }
