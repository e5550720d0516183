"""Locust scenarios for the load targets: events ingestion, the analytics API's dashboard mix and
recommendations.

    LOAD_WRITE_KEY=gm_... LOAD_TOKEN=eyJ... LOAD_GAME_ID=... \
        locust -f bench/locustfile.py --headless --host https://gm.example -u 50 -r 10 --run-time 1m

`IngestUser` needs LOAD_WRITE_KEY; `DashboardUser` needs LOAD_TOKEN (a bearer token with
analytics:read, e.g. from `gamemetrics admin issue-token`) and LOAD_GAME_ID; `RecommendationsUser`
needs LOAD_TOKEN with recommendations:read, LOAD_GAME_ID and LOAD_PLAYERS (player ids, by commas;
players without a model get the popular items, with the fallback header). A 503 (the platform's
"not now") counts as a failure named `503 refused`, so the achieved rate shows what was accepted.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from locust import FastHttpUser, between, task

BATCH = int(os.environ.get("LOAD_BATCH", "100"))


def _events(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [{"event_id": str(uuid.uuid4()), "event_type": "session_start", "player_id": f"load-{uuid.uuid4().hex[:6]}",
             "timestamp": now} for _ in range(count)]


def _dashboard(game: str) -> list[tuple[str, dict[str, Any]]]:
    today = date.today()
    span = {"g": game, "from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    return [
        ("activeUsers", {"query": "query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from,"
                                  " to: $to) { date value } }", "variables": span}),
        ("revenue", {"query": "query($g: ID!, $from: Date!, $to: Date!) { revenue(gameId: $g, from: $from, to: $to)"
                              " { date gross payers arpdau arppu conversion } }", "variables": span}),
        ("retention", {"query": "query($g: ID!, $from: Date!, $to: Date!) { retention(gameId: $g, cohortFrom: $from,"
                                " cohortTo: $to) { cohortDate size days { day value } } }", "variables": span}),
        ("sessions", {"query": "query($g: ID!, $from: Date!, $to: Date!) { sessions(gameId: $g, from: $from,"
                               " to: $to) { date sessions averageLengthSeconds } }", "variables": span}),
        ("topEvents", {"query": "query($g: ID!, $from: Date!, $to: Date!) { topEvents(gameId: $g, from: $from,"
                                " to: $to) { eventType count } }", "variables": span}),
        ("games", {"query": "{ games { id name eventsStored } }", "variables": {}}),
    ]


class IngestUser(FastHttpUser):
    """A game server posting batches of events as fast as they are answered."""

    wait_time = between(0, 0)

    @task
    def send_batch(self) -> None:
        headers = {"Authorization": f"Bearer {os.environ['LOAD_WRITE_KEY']}"}
        with self.client.post("/v1/events", json={"events": _events(BATCH)}, headers=headers,
                              name=f"POST /v1/events ({BATCH} events)", catch_response=True) as response:
            if response.status_code == 503:
                response.failure("503 refused")
            elif response.status_code != 200:
                response.failure(f"{response.status_code}")


class DashboardUser(FastHttpUser):
    """A LiveOps dashboard refreshing its panels, one GraphQL query per panel."""

    wait_time = between(0, 0)

    def on_start(self) -> None:
        self.queries = _dashboard(os.environ["LOAD_GAME_ID"])
        self.headers = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"}

    @task
    def refresh(self) -> None:
        for name, body in self.queries:
            with self.client.post("/graphql", json=body, headers=self.headers, name=f"graphql {name}",
                                  catch_response=True) as response:
                if response.status_code != 200 or (response.json() or {}).get("errors"):
                    response.failure(f"{response.status_code}: {response.text[:200]}")


class RecommendationsUser(FastHttpUser):
    """A game asking for the items to show its players, one player after another."""

    wait_time = between(0, 0)

    def on_start(self) -> None:
        self.players = os.environ.get("LOAD_PLAYERS", "player-1").split(",")
        self.headers = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"}
        self.game = os.environ["LOAD_GAME_ID"]
        self.turn = 0

    @task
    def recommend(self) -> None:
        player = self.players[self.turn % len(self.players)]
        self.turn += 1
        with self.client.get(f"/v1/games/{self.game}/players/{player}/recommendations?n=10", headers=self.headers,
                             name="GET recommendations", catch_response=True) as response:
            if response.status_code == 503:
                response.failure("503 refused")
            elif response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
