"""Recommendations on Qdrant's local mode: learnt from history, owned items excluded (also those
acquired after training), payload filters, cold start by segment, the cache dropped on interaction
and on a new model, similar items, feedback, a model switch while serving, and erasure."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from gamemetrics.gateway import combined_app
from tests.integration.recommender_fixtures import Platform, Touch
from tests.integration.recommender_fixtures import recommender as recommender  # noqa: F401

pytestmark = pytest.mark.timeout(180)

WEAPONS = [f"w{i}" for i in range(10)]
POTIONS = [f"p{i}" for i in range(10)]


def taste_history(seed: int = 3) -> list[Touch]:
    """Forty players: twenty in DE on iOS who buy weapons, twenty in FR on Android who buy potions."""
    rng = random.Random(seed)
    touches = []
    for n in range(20):
        touches += [Touch(f"a{n}", item, "purchase", "DE", "ios") for item in rng.sample(WEAPONS, 5)]
        touches += [Touch(f"b{n}", item, "item_acquired", "FR", "android") for item in rng.sample(POTIONS, 5)]
    return touches


def items(answer: dict[str, Any]) -> list[str]:
    return [pick["item_id"] for pick in answer["items"]]


def describe(platform: Platform) -> None:
    write = platform.users.auth("admin")
    for i, item in enumerate(WEAPONS):
        assert platform.http.put(f"/v1/games/{platform.users.game_id}/items/{item}",
                                 json={"category": "weapon", "price": i}, headers=write).status_code == 201
    for i, item in enumerate(POTIONS):
        assert platform.http.put(f"/v1/games/{platform.users.game_id}/items/{item}",
                                 json={"category": "potion", "price": i, "available": item != "p9"},
                                 headers=write).status_code == 201


def test_recommendations_reflect_history_and_exclude_what_is_owned(recommender: Platform) -> None:
    describe(recommender)
    history = taste_history()
    recommender.publish(history)
    assert recommender.train() == 1
    owned = {t.item for t in history if t.player == "a0"}
    answer = recommender.recommend("a0", "?n=5")
    assert answer["model_version"] == 1 and answer["player_id"] == "a0"
    assert len(items(answer)) == 5 and not owned & set(items(answer))
    assert all(pick["source"] == "collaborative" for pick in answer["items"])
    assert set(items(answer)) <= set(WEAPONS), answer  # players like a0 buy weapons
    scores = [pick["score"] for pick in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    potions = recommender.recommend("b3", "?n=4")
    assert set(items(potions)) <= set(POTIONS) and "p9" not in items(potions)  # p9 is unavailable

    # Filters are Qdrant payload filters: category and a price band.
    cheap = recommender.recommend("b3", "?n=10&category=potion&min_price=2&max_price=5")
    assert cheap["items"] and all(item in {"p2", "p3", "p4", "p5"} for item in items(cheap)), cheap
    assert not {t.item for t in history if t.player == "b3"} & set(items(cheap))

    # Acquired after the training: excluded at once, and the cached answer is dropped.
    first = recommender.recommend("a0", "?n=5")
    assert first["recommendation_id"] == answer["recommendation_id"]  # served from the cache
    top = items(first)[0]
    recommender.publish([Touch("a0", top, "item_acquired")])
    after = recommender.recommend("a0", "?n=5")
    assert after["recommendation_id"] != first["recommendation_id"] and top not in items(after)

    # A player newer than the model: items like theirs ("similar").
    recommender.publish([Touch("late", "p0", "purchase", "FR", "android"),
                         Touch("late", "p1", "purchase", "FR", "android")])
    late = recommender.recommend("late", "?n=3")
    assert {pick["source"] for pick in late["items"]} == {"similar"} and set(items(late)) <= set(POTIONS)
    assert not {"p0", "p1"} & set(items(late))

    # A new model drops every cached answer.
    assert recommender.train("bpr") == 2
    switched = recommender.recommend("a0", "?n=5")
    assert switched["model_version"] == 2 and switched["recommendation_id"] != after["recommendation_id"]


def test_cold_start_is_popular_in_the_segment_then_overall(recommender: Platform) -> None:
    describe(recommender)
    recommender.publish(taste_history())
    stranger = recommender.recommend("stranger", "?n=12&country=FR&platform=android")
    sources = {pick["source"] for pick in stranger["items"]}
    assert sources == {"popular"} and stranger["model_version"] is None
    assert set(items(stranger)[:9]) == set(POTIONS) - {"p9"}  # the segment's first, p9 unavailable
    assert set(items(stranger)[9:]) <= set(WEAPONS) and len(items(stranger)) == 12  # then overall
    assert set(items(recommender.recommend("other", "?n=9&country=DE"))) <= set(WEAPONS)
    recommender.train()
    assert {p["source"] for p in recommender.recommend("nobody", "?n=3")["items"]} == {"popular"}


def test_popular_answers_exclude_what_each_player_owns(recommender: Platform) -> None:
    """Players of a segment share one popular list; each player's own items are taken out of it."""
    describe(recommender)
    history = taste_history()
    recommender.publish(history)
    stranger = items(recommender.recommend("stranger", "?n=20&country=DE&platform=ios"))
    owned = {t.item for t in history if t.player == "a0"}  # a0 plays in DE on iOS
    mine = items(recommender.recommend("a0", "?n=20"))
    assert owned <= set(stranger) and len(stranger) == 19  # every available item
    assert mine == [item for item in stranger if item not in owned]


def test_bad_queries_are_refused(recommender: Platform) -> None:
    users, http = recommender.users, recommender.http
    path = f"/v1/games/{users.game_id}/players/p1/recommendations"
    read = users.auth("recommendations:read")
    for query in ("?n=0", "?n=101", "?n=ten", "?min_price=-1", "?max_price=nan", "?min_price=5&max_price=1",
                  "?colour=red"):
        response = http.get(path + query, headers=read)
        assert response.status_code == 400 and response.json()["error"], query
    assert http.get(path).status_code == 401
    assert http.get(path, headers=users.auth("players:read")).status_code == 403
    assert http.post(f"/v1/games/{users.game_id}/recommendations/train",
                     headers=users.auth("admin")).status_code == 409  # nothing to learn from yet


def test_similar_items_and_feedback(recommender: Platform) -> None:
    describe(recommender)
    recommender.publish(taste_history())
    recommender.train()
    users, http = recommender.users, recommender.http
    read = users.auth("recommendations:read")
    similar = http.get(f"/v1/games/{users.game_id}/items/w0/similar?n=4", headers=read).json()
    assert similar["item_id"] == "w0" and "w0" not in items(similar) and set(items(similar)) <= set(WEAPONS)
    assert all(pick["source"] == "similar" for pick in similar["items"])

    answer = recommender.recommend("a1", "?n=3")
    before = REGISTRY.get_sample_value("gamemetrics_recommendation_feedback_total",
                                       {"kind": "clicked", "source": "collaborative"}) or 0.0
    feedback = f"/v1/games/{users.game_id}/recommendations/feedback"
    body = {"recommendation_id": answer["recommendation_id"], "kind": "clicked", "player_id": "a1",
            "item_id": items(answer)[0], "source": "collaborative"}
    assert http.post(feedback, json=body, headers=read).status_code == 201
    assert http.post(feedback, json=body, headers=read).json() == {"recorded": False}  # counted once
    assert REGISTRY.get_sample_value("gamemetrics_recommendation_feedback_total",
                                     {"kind": "clicked", "source": "collaborative"}) == before + 1
    for bad in ({**body, "kind": "liked"}, {**body, "recommendation_id": "x"}, {"kind": "shown"}):
        assert http.post(feedback, json=bad, headers=read).status_code == 422, bad
    for item in items(answer):
        assert http.post(feedback, json={**body, "kind": "shown", "item_id": item}, headers=read).status_code == 201

    # A studio reads click-through and conversion per source over GraphQL.
    today = datetime.now(UTC).date().isoformat()
    query = ('query($g: ID!, $d: Date!) { recommendationFeedback(gameId: $g, from: $d, to: $d)'
             ' { source shown clicked purchased clickThrough conversion } }')
    with TestClient(combined_app(users.settings, users.database_url, ["analytics"])) as analytics:
        answered = analytics.post("/graphql", json={"query": query, "variables": {"g": str(users.game_id), "d": today}},
                                  headers=users.auth("analytics:read"))
    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["recommendationFeedback"] == [
        {"source": "collaborative", "shown": 3, "clicked": 1, "purchased": 0, "clickThrough": 1 / 3,
         "conversion": 0.0}]


def test_a_model_switch_while_serving_fails_no_request(recommender: Platform) -> None:
    describe(recommender)
    recommender.publish(taste_history())
    recommender.train()
    users, http = recommender.users, recommender.http
    read = users.auth("recommendations:read")
    failures: list[str] = []
    versions: set[int] = set()
    stop = threading.Event()

    def ask() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            response = http.get(f"/v1/games/{users.game_id}/players/a{n % 20}/recommendations?n=3&category=weapon",
                                headers=read)
            if response.status_code != 200 or len(response.json()["items"]) != 3:
                failures.append(response.text)
            else:
                versions.add(response.json()["model_version"])

    askers = [threading.Thread(target=ask) for _ in range(3)]
    for asker in askers:
        asker.start()
    for _ in range(3):
        recommender.train()
        time.sleep(0.2)
    stop.set()
    for asker in askers:
        asker.join()
    assert failures == []
    assert len(versions) >= 2 and max(versions) == 4
    # Vectors of versions older than the one before the active one are gone.
    assert recommender.recommend("a1")["model_version"] == 4


def test_erasure_removes_vectors_interactions_and_answers(recommender: Platform) -> None:
    describe(recommender)
    recommender.publish(taste_history())
    recommender.train()
    users, http = recommender.users, recommender.http
    assert recommender.recommend("a2", "?n=3")["items"][0]["source"] == "collaborative"
    assert http.put(f"/v1/games/{users.game_id}/players/a2", json={"traits": {}},
                    headers=users.auth("players:write")).status_code == 201
    exported = http.get(f"/v1/games/{users.game_id}/players/a2/export", headers=users.auth("players:read"))
    assert exported.status_code == 200, exported.text
    held = exported.json()["recommender"]
    assert sorted(i["item_id"] for i in held["interactions"]) == sorted(
        t.item for t in taste_history() if t.player == "a2") and held["feedback"] == []
    erased = http.delete(f"/v1/games/{users.game_id}/players/a2", headers=users.auth("gdpr:erase"))
    assert erased.status_code == 202, erased.text
    status_path = erased.headers["location"]
    deadline = time.monotonic() + 60
    while True:
        status = http.get(status_path, headers=users.auth("gdpr:erase")).json()
        if status["stores"].get("vectors", {}).get("state") == "erased":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert users.sql("SELECT count(*) FROM rec_interactions WHERE player_id = 'a2'") == [(0,)]
    # An event of theirs published before the erasure and read after it is not learnt again.
    recommender.publish([Touch("a2", "w9"), Touch("a3", "w9", "item_used")], expect=1)
    assert users.sql("SELECT player_id FROM rec_interactions WHERE item_id = 'w9' AND event_type = 'item_used'"
                     " OR player_id = 'a2'") == [("a3",)]
    after = recommender.recommend("a2", "?n=3")
    assert {pick["source"] for pick in after["items"]} == {"popular"}  # no vector, no history, no cached answer
