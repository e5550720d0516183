"""The users service's metrics the identity alerts read: token requests by outcome, and the age of
the oldest erasure not yet confirmed by every store."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from gamemetrics.adapters.postgres.pool import open_pool
from gamemetrics.services.users.metrics import ErasureBacklog
from tests.integration.users_fixtures import Users


def token_requests(outcome: str) -> float:
    return REGISTRY.get_sample_value("gamemetrics_token_requests_total", {"outcome": outcome}) or 0.0


def test_token_requests_are_counted_by_outcome(users: Users) -> None:
    issued, bad = token_requests("issued"), token_requests("invalid_client")
    users.token("players:read")
    refused = users.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(users.client_id, "not-the-secret"))
    assert refused.status_code == 401
    assert (token_requests("issued"), token_requests("invalid_client")) == (issued + 1, bad + 1)


async def test_the_erasure_backlog_reports_the_oldest_open_request(users: Users) -> None:
    erasure = uuid.uuid4()
    users.sql("INSERT INTO erasures (erasure_id, tenant_id, game_id, player_hash, requested_by, requested_at)"
              " VALUES (%s, %s, %s, %s, 'test', now() - interval '2 days')",
              (erasure, users.tenant_id, users.game_id, uuid.uuid4().bytes))
    pool = await open_pool(users.database_url, max_size=1, name="test-backlog")
    try:
        backlog = ErasureBacklog(pool, interval_s=30)
        await backlog.measure()
        assert REGISTRY.get_sample_value("gamemetrics_erasures_open") >= 1
        assert REGISTRY.get_sample_value("gamemetrics_erasure_oldest_open_seconds") >= 2 * 86400
        users.sql("UPDATE erasures SET completed_at = now() WHERE completed_at IS NULL")
        await backlog.measure()
        assert REGISTRY.get_sample_value("gamemetrics_erasures_open") == 0
        assert REGISTRY.get_sample_value("gamemetrics_erasure_oldest_open_seconds") == 0
    finally:
        await pool.close()
