"""A platform on each bus in turn, for the tests that hold for both: the embedded log and a real
Kafka broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gamemetrics.runtime import Platform, connect, topic_partitions
from gamemetrics.settings import Settings
from tests.kafka_broker import kafka_settings


@pytest.fixture(params=["pglog", "kafka"])
def bus_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "pglog":
        return settings
    return kafka_settings(settings, request.getfixturevalue("kafka_broker"))


@pytest_asyncio.fixture
async def bus_platform(bus_settings: Settings, database_url: str) -> AsyncIterator[Platform]:
    async with connect(bus_settings, database_url, name="contract") as platform:
        await platform.bus.create_topics(topic_partitions(bus_settings))  # Kafka's `gamemetrics kafka init`
        yield platform
