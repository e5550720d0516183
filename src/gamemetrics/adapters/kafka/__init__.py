"""The scaled Bus adapter: Apache Kafka through confluent-kafka (librdkafka)."""

from gamemetrics.adapters.kafka.bus import KafkaBus, TopicReport

__all__ = ["KafkaBus", "TopicReport"]
