"""The recommender on a real Redis (answers shared there, dropped on interaction) and with Redis or
Qdrant unreachable: answers still come, from popularity, with a header saying so; `/readyz` names
the dependency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.settings import CacheSettings, Settings, VectorSettings
from tests.conftest import free_port
from tests.integration.recommender_fixtures import FAST, Platform, Touch, recommender_platform
from tests.integration.test_recommender_serving import describe, items, taste_history
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(180)


def _platform(settings: Settings, database_url: str, **update: object) -> Iterator[Platform]:
    yield from recommender_platform(settings.model_copy(update={"recommender": FAST, **update}), database_url)


@pytest.fixture
def on_redis(settings: Settings, database_url: str, redis_server: RedisServer) -> Iterator[tuple[Platform, str]]:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    cache = CacheSettings(redis_url=redis_server.url, redis_namespace=namespace)
    for platform in _platform(settings, database_url, cache=cache):
        yield platform, namespace


def test_answers_are_kept_on_redis_and_dropped_when_the_player_interacts(on_redis: tuple[Platform, str],
                                                                       redis_server: RedisServer) -> None:
    platform, namespace = on_redis
    describe(platform)
    platform.publish(taste_history())
    platform.train()
    first = platform.recommend("a0", "?n=3")
    client = redis.Redis.from_url(redis_server.url)
    assert len(client.keys(f"{namespace}:recommender:answer:*")) == 1
    assert platform.recommend("a0", "?n=3")["recommendation_id"] == first["recommendation_id"]
    platform.publish([Touch("a0", items(first)[0], "item_acquired")])
    assert client.exists(f"{namespace}:recommender:gen:{platform.users.tenant_id}:{platform.users.game_id}:a0")
    again = platform.recommend("a0", "?n=3")
    assert again["recommendation_id"] != first["recommendation_id"] and items(first)[0] not in items(again)
    ready = platform.http.get("/readyz").json()
    assert ready["services"]["recommender"]["checks"]["cache"] == "ok"
    assert ready["services"]["recommender"]["checks"]["vectors"] == "ok"


def test_redis_unreachable_answers_without_the_cache(settings: Settings, database_url: str) -> None:
    cache = CacheSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.3)
    for platform in _platform(settings, database_url, cache=cache):
        # The token endpoint's rate limits live on Redis too: tokens come from a users service beside it.
        with TestClient(combined_app(settings, database_url, ["users"])) as issuing:
            platform.users.http, serving = issuing, platform.users.http
            for scopes in (("admin",), ("recommendations:read",)):
                platform.users.token(*scopes)
            platform.users.http = serving
        describe(platform)
        platform.publish(taste_history())  # stored; the cache's generation waits for Redis
        platform.train()
        response = platform.http.get(f"/v1/games/{platform.users.game_id}/players/a0/recommendations?n=3",
                                     headers=platform.users.auth("recommendations:read"))
        assert response.status_code == 200, response.text
        assert response.headers["x-recommendations-fallback"] == "cache"
        assert {pick["source"] for pick in response.json()["items"]} == {"collaborative"}
        ready = platform.http.get("/readyz")
        assert ready.status_code == 503 and "unavailable" in ready.json()["services"]["recommender"]["checks"]["cache"]


def test_qdrant_unreachable_falls_back_to_popular(settings: Settings, database_url: str) -> None:
    vectors = VectorSettings(qdrant_url=f"http://127.0.0.1:{free_port()}")
    for platform in _platform(settings, database_url, vectors=vectors):
        users = platform.users
        describe(platform)
        platform.publish(taste_history())
        # A model trained while Qdrant answered, which serving now cannot reach.
        users.sql("INSERT INTO rec_models (tenant_id, game_id, version, algorithm, factors, players, items,"
                  " interactions, active) VALUES (%s, %s, 1, 'als', 4, 40, 20, 200, true)",
                  (users.tenant_id, users.game_id))
        response = platform.http.get(f"/v1/games/{users.game_id}/players/a0/recommendations?n=3",
                                     headers=users.auth("recommendations:read"))
        assert response.status_code == 200, response.text
        assert response.headers["x-recommendations-fallback"] == "vectors"
        assert {pick["source"] for pick in response.json()["items"]} == {"popular"}
        similar = platform.http.get(f"/v1/games/{users.game_id}/items/w0/similar?n=3",
                                    headers=users.auth("recommendations:read"))
        assert similar.status_code == 200 and similar.headers["x-recommendations-fallback"] == "vectors"
        trained = platform.http.post(f"/v1/games/{users.game_id}/recommendations/train", headers=users.auth("admin"))
        assert trained.status_code == 503 and trained.json()["error"]
        ready = platform.http.get("/readyz")
        assert ready.status_code == 503
        assert "unavailable" in ready.json()["services"]["recommender"]["checks"]["vectors"]
