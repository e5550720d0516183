"""A users and a recommender service in one process on a fresh database, with Qdrant's local mode in
the data dir, and helpers that publish processed events the way the processor does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pytest
from starlette.testclient import TestClient

from gamemetrics.events.envelope import partition_key
from gamemetrics.events.processed import HEADERS, ProcessedEvent
from gamemetrics.gateway import combined_app
from gamemetrics.migrations import upgrade
from gamemetrics.ports.bus import PROCESSED_EVENTS, Message
from gamemetrics.runtime import connect
from gamemetrics.settings import RecommenderSettings, Settings
from tests.integration.users_fixtures import Users, add_tenant

# Small models train in well under a second; the schedule is left to its own tests. The test data
# have two tastes, which few factors learn without memorising each player.
FAST = RecommenderSettings(recommender_factors=4, recommender_iterations=15, recommender_regularization=1.0,
                           recommender_check_seconds=3600)


@dataclass(frozen=True)
class Touch:
    """One item event of a player."""

    player: str
    item: str
    event_type: str = "purchase"
    country: str | None = "DE"
    platform: str | None = "ios"
    at: datetime | None = None


def processed(tenant: uuid.UUID, game: uuid.UUID, touch: Touch) -> Message:
    at = touch.at or datetime.now(UTC)
    event = ProcessedEvent(tenant, game, uuid.uuid4(), touch.event_type, touch.player, at, at, "api", False,
                           msgspec.Raw(msgspec.json.encode({"item_id": touch.item, "quantity": 1})),
                           msgspec.Raw(b"{}"), platform=touch.platform, country=touch.country)
    return Message(partition_key(tenant, touch.player), msgspec.json.encode(event), HEADERS)


@dataclass
class Platform:
    users: Users

    @property
    def http(self) -> TestClient:
        return self.users.http

    def publish(self, touches: Sequence[Touch], *, tenant: uuid.UUID | None = None,
                game: uuid.UUID | None = None, expect: int | None = None) -> None:
        """Publish the touches on the processed topic and wait until the recommender stored `expect`
        new interactions (all of them by default)."""
        tenant, game = tenant or self.users.tenant_id, game or self.users.game_id
        before = self.interactions()

        async def send() -> None:
            async with connect(self.users.settings, self.users.database_url, name="test") as adapters:
                producer = adapters.bus.producer()
                await producer.send(PROCESSED_EVENTS, [processed(tenant, game, t) for t in touches])
                await producer.close()

        asyncio.run(send())
        deadline = time.monotonic() + 30
        while self.interactions() < before + (len(touches) if expect is None else expect):
            assert time.monotonic() < deadline, "the recommender did not store the interactions"
            time.sleep(0.05)

    def interactions(self) -> int:
        return int(self.users.sql("SELECT count(*) FROM rec_interactions")[0][0])

    def train(self, algorithm: str = "als") -> int:
        response = self.http.post(f"/v1/games/{self.users.game_id}/recommendations/train?algorithm={algorithm}",
                                  headers=self.users.auth("admin"))
        assert response.status_code == 201, response.text
        return int(response.json()["model_version"])

    def recommend(self, player: str, query: str = "", scope: str = "recommendations:read") -> dict[str, object]:
        response = self.http.get(f"/v1/games/{self.users.game_id}/players/{player}/recommendations{query}",
                                 headers=self.users.auth(scope))
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


def recommender_platform(settings: Settings, database_url: str) -> Iterator[Platform]:
    upgrade(database_url)
    tenant, game, client_id, secret = add_tenant(database_url)
    with TestClient(combined_app(settings, database_url, ["users", "recommender"])) as http:
        yield Platform(Users(http, settings, database_url, tenant, game, client_id, secret))


@pytest.fixture
def recommender(settings: Settings, database_url: str) -> Iterator[Platform]:
    fast = settings.model_copy(update={"recommender": FAST})
    yield from recommender_platform(fast, database_url)
