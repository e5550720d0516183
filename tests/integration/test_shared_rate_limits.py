"""With GAMEMETRICS_REDIS_URL set, the token endpoint's rate limits are one bucket across processes:
two users services on the same Redis (as two replicas would be) refuse together."""

from __future__ import annotations

import uuid

from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from gamemetrics.settings import CacheSettings, Settings
from tests.integration.users_fixtures import users_service
from tests.redis_server import RedisServer

FORM = {"grant_type": "client_credentials"}


def test_two_replicas_share_the_clients_bucket(settings: Settings, database_url: str,
                                               redis_server: RedisServer) -> None:
    shared = settings.updated(
        users={"token_rate_per_client_per_second": 0.01, "token_rate_client_burst": 3},
        cache=CacheSettings(redis_url=redis_server.url, redis_namespace=f"t{uuid.uuid4().hex[:10]}"),
    )
    service = users_service(shared, database_url)
    users = next(service)
    try:
        with TestClient(combined_app(shared, database_url, ["users"])) as replica:
            credentials = (users.client_id, users.client_secret)
            assert users.http.post("/oauth/token", data=FORM, auth=credentials).status_code == 200
            assert replica.post("/oauth/token", data=FORM, auth=credentials).status_code == 200
            assert users.http.post("/oauth/token", data=FORM, auth=credentials).status_code == 200
            limited = replica.post("/oauth/token", data=FORM, auth=credentials)
            assert limited.status_code == 429, "the replica saw the three tokens the first service gave"
            assert limited.json()["error"] == "slow_down"
    finally:
        next(service, None)
