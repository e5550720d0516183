"""KafkaBus: the Bus port on Apache Kafka (confluent-kafka), the scaled adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from gamemetrics.adapters.kafka.config import (
    Names,
    client_log,
    common_config,
    consumer_config,
    producer_config,
    topic_config,
)
from gamemetrics.adapters.kafka.consumer import KafkaConsumer
from gamemetrics.adapters.kafka.producer import KafkaProducer
from gamemetrics.ports.bus import RAW_EVENTS, BusError, PartitionLag
from gamemetrics.settings import Settings

# Admin requests give up after this long; the broker being away is an answer, not a hang.
_ADMIN_TIMEOUT_S = 10.0
_PING_TIMEOUT_S = 2.0


@dataclass(slots=True)
class TopicReport:
    """What `ensure_topics` found and did: created topics, and existing ones that differ from the settings."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "unchanged": self.unchanged, "drift": self.drift}


class KafkaBus:
    """Topics, keyed partitions, groups and offsets on a Kafka cluster named by the settings."""

    def __init__(self, settings: Settings, topics: Mapping[str, int], *, client_id: str = "gamemetrics") -> None:
        self._settings = settings
        self._topics = dict(topics)
        self._client_id = client_id
        self._names = Names(settings.kafka.topic_prefix)
        self._admin_client: AdminClient | None = None
        self._refused: KafkaError | None = None
        self._refused_at = 0.0
        self._producer: KafkaProducer | None = None

    @property
    def names(self) -> Names:
        return self._names

    def _admin(self) -> AdminClient:
        if self._admin_client is None:
            # librdkafka's configuration takes callbacks beside its strings and numbers.
            config: dict[str, Any] = {**common_config(self._settings, f"{self._client_id}-admin"),
                                      "error_cb": self._on_error}
            self._admin_client = AdminClient(config)
        return self._admin_client

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in _REFUSALS:
            self._refused, self._refused_at = err, time.monotonic()
        client_log.warning("kafka admin: %s", err.str())

    def _result(self, future: Future[Any], what: str) -> Any:
        """A request's answer; BusError at once if the cluster refused our credentials, or after the timeout."""
        started = time.monotonic()
        deadline = started + _ADMIN_TIMEOUT_S
        while not future.done():
            self._admin().poll(0.1)  # serves error_cb, which reports refused credentials
            self._raise_if_refused(since=started)
            if time.monotonic() > deadline:
                raise BusError(f"Kafka at {self._settings.kafka.bootstrap} did not answer {what}"
                               f" within {_ADMIN_TIMEOUT_S:.0f}s")
        try:
            return future.result()
        except KafkaException:
            self._raise_if_refused(since=started)  # the refusal says more than "timed out"
            raise

    def _raise_if_refused(self, since: float) -> None:
        """Raise if the cluster refused this client since `since` (earlier refusals may have been transient)."""
        if self._refused is not None and self._refused_at >= since:
            raise BusError(f"Kafka at {self._settings.kafka.bootstrap} refused this client: {self._refused.str()}")

    def _unreachable(self, exc: KafkaException, since: float) -> BusError:
        self._admin().poll(0)
        self._raise_if_refused(since)
        return BusError(f"Kafka at {self._settings.kafka.bootstrap} cannot be reached: {exc.args[0].str()}")

    async def create_topics(self, partitions: Mapping[str, int]) -> None:
        await self.ensure_topics(partitions)

    async def ensure_topics(self, partitions: Mapping[str, int]) -> TopicReport:
        """Create missing topics with the settings' replication and config; report how existing ones differ."""
        self._topics.update(partitions)
        return await asyncio.to_thread(self._ensure_topics, dict(partitions))

    def _ensure_topics(self, partitions: dict[str, int]) -> TopicReport:
        admin = self._admin()
        wanted_config = topic_config(self._settings)
        replication = self._settings.kafka.replication_factor
        report = TopicReport()
        new = [
            NewTopic(self._names.topic(t), num_partitions=n, replication_factor=replication, config=wanted_config)
            for t, n in partitions.items()
        ]
        existing: list[str] = []
        for topic, future in zip(partitions, admin.create_topics(new, request_timeout=_ADMIN_TIMEOUT_S).values(),
                                 strict=True):
            try:
                self._result(future, f"creating {self._names.topic(topic)}")
                report.created.append(topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BusError(f"cannot create topic {self._names.topic(topic)}: {exc.args[0].str()}") from exc
                existing.append(topic)
        if existing:
            self._check_drift(admin, {t: partitions[t] for t in existing}, wanted_config, report)
        return report

    def _check_drift(
        self, admin: AdminClient, partitions: dict[str, int], wanted_config: dict[str, str], report: TopicReport
    ) -> None:
        started = time.monotonic()
        try:
            metadata = admin.list_topics(timeout=_ADMIN_TIMEOUT_S)
            resources = [ConfigResource(ConfigResource.Type.TOPIC, self._names.topic(t)) for t in partitions]
            configs = {r.name: self._result(f, f"describing {r.name}")
                       for r, f in admin.describe_configs(resources, request_timeout=_ADMIN_TIMEOUT_S).items()}
        except KafkaException as exc:
            raise self._unreachable(exc, started) from exc
        for topic, count in partitions.items():
            physical = self._names.topic(topic)
            found = metadata.topics.get(physical)
            differences: list[str] = []
            if found is not None:
                if len(found.partitions) != count:
                    differences.append(f"partitions: {len(found.partitions)}, wanted {count}")
                replicas = {len(p.replicas) for p in found.partitions.values()}
                if replicas and replicas != {self._settings.kafka.replication_factor}:
                    differences.append(
                        f"replication factor: {sorted(replicas)}, wanted {self._settings.kafka.replication_factor}"
                    )
            for key, value in wanted_config.items():
                actual = configs.get(physical, {}).get(key)
                if actual is not None and actual.value != value:
                    differences.append(f"{key}: {actual.value}, wanted {value}")
            if differences:
                report.drift[topic] = differences
            else:
                report.unchanged.append(topic)

    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                producer_config(self._settings, f"{self._client_id}-producer"), self._names, self._topics,
                delivery_timeout_s=self._settings.kafka.delivery_timeout_ms / 1000,
            )
        return self._producer

    def consumer(self, group_id: str, topics: Sequence[str]) -> KafkaConsumer:
        missing = [t for t in topics if t not in self._topics]
        if missing:
            raise BusError(f"unknown topics {missing}")
        config = consumer_config(self._settings, f"{self._client_id}-{group_id}", self._names.group(group_id))
        return KafkaConsumer(config, self._names, group_id, topics,
                             close_timeout=self._settings.kafka.session_timeout_ms / 1000 + 5.0)

    async def lag(self) -> list[PartitionLag]:
        return await asyncio.to_thread(self._lag)

    def _lag(self) -> list[PartitionLag]:
        admin = self._admin()
        try:
            listed = self._result(admin.list_consumer_groups(request_timeout=_ADMIN_TIMEOUT_S), "listing groups")
            groups = sorted(
                g.group_id for g in listed.valid if self._names.logical_group(g.group_id) is not None
            )
            committed: dict[tuple[str, str, int], int] = {}
            for group in groups:
                answer = self._result(admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group)], request_timeout=_ADMIN_TIMEOUT_S
                )[group], f"the offsets of {group}")
                for tp in answer.topic_partitions or []:
                    topic = self._names.logical_topic(tp.topic)
                    if topic in self._topics and tp.offset >= 0:
                        committed[(group, topic, tp.partition)] = tp.offset
            read = sorted({(g, t) for g, t, _ in committed})
            wanted = {TopicPartition(self._names.topic(t), p): OffsetSpec.latest()
                      for _, t in read for p in range(self._partition_count(admin, t))}
            ends: dict[tuple[str, int], int] = {}
            if wanted:
                for tp, future in admin.list_offsets(wanted, request_timeout=_ADMIN_TIMEOUT_S).items():
                    ends[(self._names.logical_topic(tp.topic) or tp.topic, tp.partition)] = (
                        self._result(future, f"the end of {tp.topic}[{tp.partition}]").offset
                    )
        except KafkaException as exc:
            raise BusError(f"cannot read consumer group offsets: {exc.args[0].str()}") from exc
        lags = []
        for group, topic in read:
            logical_group = self._names.logical_group(group) or group
            for (t, p), end in sorted(ends.items()):
                if t == topic:
                    lags.append(PartitionLag(logical_group, t, p, committed.get((group, t, p), 0), end))
        return lags

    def _partition_count(self, admin: AdminClient, topic: str) -> int:
        physical = self._names.topic(topic)
        found = admin.list_topics(physical, timeout=_ADMIN_TIMEOUT_S).topics.get(physical)
        if found is None or found.error is not None:
            return 0
        return len(found.partitions)

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        physical = self._names.topic(RAW_EVENTS)
        started = time.monotonic()
        try:
            metadata = self._admin().list_topics(physical, timeout=_PING_TIMEOUT_S)
        except KafkaException as exc:
            raise self._unreachable(exc, started) from exc
        found = metadata.topics.get(physical)
        if not metadata.brokers:
            raise BusError(f"Kafka at {self._settings.kafka.bootstrap} lists no brokers")
        if found is None or found.error is not None:
            raise BusError(f"topic {physical} is missing; run `gamemetrics kafka init`")

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.close()


# Answers that mean the cluster will not serve this client as configured: waiting longer will not help.
_REFUSALS = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._SSL,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}
