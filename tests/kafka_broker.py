"""The test Kafka broker: a real Apache Kafka 4.x node (KRaft) from the jars `make kafka-libs` fetched,
started once per test session on free loopback ports and stopped at the end.

Missing jars, Java or kcat fail the tests that need them, loudly: `make test` installs all three.
"""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gamemetrics.adapters.kafka.local import LocalBroker, LocalBrokerError
from gamemetrics.settings import Settings

LIBS = Path(__file__).resolve().parents[1] / ".kafka" / "libs"
SCRAM_USER = "gamemetrics"
SCRAM_PASSWORD = secrets.token_hex(12)


def start_broker(directory: Path, **options: object) -> LocalBroker:
    """A started, ready broker; a test that needs one fails (not skips) when it cannot start."""
    broker = LocalBroker(directory, LIBS, **options)  # type: ignore[arg-type]
    try:
        broker.start()
        broker.wait_ready()
    except LocalBrokerError as exc:
        broker.stop()
        pytest.fail(f"the test Kafka broker did not start (`make test-deps` fetches what it needs): {exc}",
                    pytrace=False)
    except BaseException:
        broker.stop()
        raise
    return broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One broker for the session, with a PLAINTEXT listener and a SASL/SCRAM one."""
    broker = start_broker(tmp_path_factory.mktemp("kafka"), scram_users={SCRAM_USER: SCRAM_PASSWORD})
    yield broker
    broker.stop()


def kafka_settings(settings: Settings, broker: LocalBroker, **overrides: object) -> Settings:
    """`settings` switched to `broker`, under a topic and group prefix of their own (isolation per test)."""
    return settings.model_copy(update={
        "kafka_bootstrap": broker.bootstrap,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
        "kafka_replication_factor": 1,
        "kafka_min_insync_replicas": 1,
        "kafka_delivery_timeout_ms": 5000,
        "kafka_session_timeout_ms": 6000,
        **overrides,
    })


def kcat() -> str:
    """The kcat binary; fails the test if it is not installed."""
    found = shutil.which("kcat")
    if found is None:
        pytest.fail("kcat is not installed; `make test-deps` installs Debian's kcat package", pytrace=False)
    return found
