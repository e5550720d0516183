"""The catalogue over HTTP: describe, read, list and delete items; bad documents and foreign
tenants refused; items learnt from events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from gamemetrics.settings import Settings
from tests.integration.recommender_fixtures import FAST, Platform, Touch, recommender_platform
from tests.integration.recommender_fixtures import recommender as recommender  # noqa: F401
from tests.integration.users_fixtures import add_tenant

pytestmark = pytest.mark.timeout(120)


def test_items_are_described_listed_and_deleted(recommender: Platform) -> None:
    users, http = recommender.users, recommender.http
    base = f"/v1/games/{users.game_id}/items"
    write, read = users.auth("admin"), users.auth("recommendations:read")
    sword = {"category": "weapon", "price": 4.99, "tags": ["melee"], "available": True}
    created = http.put(f"{base}/sword", json=sword, headers=write)
    assert created.status_code == 201, created.text
    assert created.json()["category"] == "weapon" and created.json()["price"] == 4.99
    assert http.put(f"{base}/sword", json={**sword, "price": 3}, headers=write).status_code == 200
    assert http.get(f"{base}/sword", headers=read).json()["price"] == 3
    for i in range(5):
        assert http.put(f"{base}/potion-{i}", json={"category": "potion", "price": i}, headers=write).status_code == 201
    first = http.get(f"{base}?limit=4", headers=read).json()
    assert [item["item_id"] for item in first["items"]] == ["potion-0", "potion-1", "potion-2", "potion-3"]
    rest = http.get(f"{base}?limit=4&after={first['next_after']}", headers=read).json()
    assert [item["item_id"] for item in rest["items"]] == ["potion-4", "sword"] and rest["next_after"] is None
    potions = http.get(f"{base}?category=potion&limit=200", headers=read).json()["items"]
    assert len(potions) == 5
    assert http.delete(f"{base}/sword", headers=write).status_code == 204
    assert http.get(f"{base}/sword", headers=read).status_code == 404
    assert http.delete(f"{base}/sword", headers=write).status_code == 404


def test_bad_items_and_callers_are_refused(recommender: Platform) -> None:
    users, http = recommender.users, recommender.http
    base = f"/v1/games/{users.game_id}/items"
    write = users.auth("admin")
    for body in ({"price": -1}, {"price": "free"}, {"colour": "red"}, {"tags": "melee"}, [1, 2],
                 {"category": ""}, {"tags": ["x" * 65]}):
        response = http.put(f"{base}/bad", json=body, headers=write)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]
    assert http.put(f"{base}/bad", content=b"{", headers={**write, "Content-Type": "application/json"}
                    ).status_code == 400
    assert http.put(f"{base}/{'x' * 257}", json={}, headers=write).status_code == 400
    assert http.put(f"{base}/ok", json={}).status_code == 401
    assert http.put(f"{base}/ok", json={}, headers=users.auth("recommendations:read")).status_code == 403
    _, foreign_game, _, _ = add_tenant(users.database_url)
    assert http.put(f"/v1/games/{foreign_game}/items/ok", json={}, headers=write).status_code == 404
    assert http.get(f"/v1/games/{foreign_game}/items", headers=users.auth("recommendations:read")).status_code == 404
    assert http.get(f"/v1/games/{foreign_game}/players/p/recommendations",
                    headers=users.auth("recommendations:read")).status_code == 404


def test_items_are_learnt_from_events_and_interactions_kept_once(recommender: Platform) -> None:
    users = recommender.users
    recommender.publish([Touch("p1", "shield", "item_acquired"), Touch("p1", "shield", "item_used"),
                         Touch("p2", "bow", "purchase"), Touch("p2", "bow", "level_complete")], expect=3)
    learnt = recommender.http.get(f"/v1/games/{users.game_id}/items", headers=users.auth("recommendations:read"))
    assert [(i["item_id"], i["described_at"]) for i in learnt.json()["items"]] == [("bow", None), ("shield", None)]
    rows = users.sql("SELECT player_id, item_id, event_type FROM rec_interactions ORDER BY 1, 3")
    assert rows == [("p1", "shield", "item_acquired"), ("p1", "shield", "item_used"), ("p2", "bow", "purchase")]


def test_the_schedule_trains_a_new_game_and_retrains_after_enough_interactions(
        settings: Settings, database_url: str) -> None:
    eager = FAST.model_copy(update={"recommender_check_seconds": 0.2, "recommender_retrain_interactions": 6})
    for platform in recommender_platform(settings.model_copy(update={"recommender": eager}), database_url):
        trained = _sample("gamemetrics_recommender_trainings_total", outcome="trained")
        old = datetime.now(UTC) - timedelta(days=30)  # history: event time counts for nothing here
        # One player's events share a partition, so each publish is read as one batch.
        platform.publish([Touch("p0", f"i{n}", at=old) for n in range(4)])
        assert _version_within(platform, 1)
        platform.publish([Touch("p9", f"i{n}", "item_used", at=old) for n in range(5)])
        time.sleep(1.0)
        assert _versions(platform) == [1]  # five new: not yet enough, and the model is young
        # ...so they wait for a model, and the staleness alert's gauge says for how long.
        assert _sample("gamemetrics_recommender_stalest_model_seconds") > 0
        platform.publish([Touch("p8", "i1", at=old)])
        assert _version_within(platform, 2)
        # The version is visible before its training returns and is counted: both are waited for.
        deadline = time.monotonic() + 10
        while _sample("gamemetrics_recommender_stalest_model_seconds") > 0 or \
                _sample("gamemetrics_recommender_trainings_total", outcome="trained") < trained + 2:
            assert time.monotonic() < deadline, "the gauge still says interactions wait for a model"
            time.sleep(0.1)
        assert _sample("gamemetrics_recommender_trainings_total", outcome="trained") == trained + 2


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _versions(platform: Platform) -> list[int]:
    return [row[0] for row in platform.users.sql("SELECT version FROM rec_models ORDER BY version")]


def _version_within(platform: Platform, version: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while version not in _versions(platform):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
