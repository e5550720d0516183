"""The recommender's part of a run: a game of its own with a trained model, steady recommendation
requests recorded answer by answer, and the probes that the answers kept coming and the model
came through unchanged."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from gamemetrics.chaos import checks, platform, run_dir

FALLBACK_HEADER = "X-Recommendations-Fallback"
_requests: dict[Path, RecommendationRequests] = {}


def _events(tag: str, rng: random.Random) -> list[dict[str, Any]]:
    """Knights acquire swords, mages buy gems: a history a model learns two tastes from."""
    swords, gems = [f"sword-{tag}-{i}" for i in range(6)], [f"gem-{tag}-{i}" for i in range(6)]
    now = datetime.now(UTC).isoformat()
    events = []
    for n in range(15):
        for item in rng.sample(swords, 3):
            events.append({"event_id": str(uuid.uuid4()), "event_type": "item_acquired", "player_id": f"knight-{n}",
                           "timestamp": now, "properties": {"item_id": item}})
        for item in rng.sample(gems, 3):
            events.append({"event_id": str(uuid.uuid4()), "event_type": "purchase", "player_id": f"mage-{n}",
                           "timestamp": now, "properties": {"item_id": item, "price": 1.99, "currency": "EUR"}})
    return events


def train_a_model(configuration: dict[str, Any] | None = None, seconds: float = 90.0) -> dict[str, Any]:
    """A tenant and game of the recommender's own (the run's event tenant keeps only the traffic's
    events), interactions sent through ingest, a model trained on them, and the answers it gives."""
    state = run_dir.read(configuration, "platform")
    env, base_url = state["env"], state["base_url"]
    tenant = platform.cli(env, "admin", "create-tenant", "Chaos Recommender Studio")["tenant_id"]
    game = platform.cli(env, "admin", "create-game", "--tenant", tenant, "Chaos Shop")["game_id"]
    key = platform.cli(env, "admin", "create-write-key", "--game", game)["write_key"]
    token = platform.cli(env, "admin", "issue-token", "--tenant", tenant, "--scopes",
                         "admin recommendations:read")["access_token"]
    events = _events(uuid.uuid4().hex[:6], random.Random(6))
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for start in range(0, len(events), 100):
            sent = http.post("/v1/events", json={"events": events[start:start + 100]},
                             headers={"Authorization": f"Bearer {key}"})
            sent.raise_for_status()
        _wait_for_interactions(platform.database_url_of(state), game, len(events), seconds)
        trained = http.post(f"/v1/games/{game}/recommendations/train", headers={"Authorization": f"Bearer {token}"})
        if trained.status_code != 201:
            raise RuntimeError(f"training answered {trained.status_code}: {trained.text[:300]}")
        players = ["knight-0", "mage-0", "newcomer-0"]
        baseline = {p: _picks(http, game, token, p) for p in players}
    record = {"tenant_id": tenant, "game_id": game, "token": token, "players": players, "baseline": baseline}
    run_dir.write(configuration, "recommender", record)
    return {"game_id": game, "events": len(events), "model": trained.json(), "baseline": baseline}


def _wait_for_interactions(url: str, game: str, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM rec_interactions WHERE game_id = %s", (game,)).fetchone()
            if row is not None and row[0] >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recommender had {row[0] if row else 0} of {count} interactions after"
                                   f" {seconds:g}s")
            time.sleep(0.5)


def _picks(http: httpx.Client, game: str, token: str, player: str) -> dict[str, Any]:
    answer = http.get(f"/v1/games/{game}/players/{player}/recommendations?n=5",
                      headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    body = answer.json()
    return {"model_version": body["model_version"], "items": [p["item_id"] for p in body["items"]],
            "fallback": answer.headers.get(FALLBACK_HEADER)}


class RecommendationRequests:
    """One thread asking for the model's players' recommendations at a fixed pace, each answer recorded."""

    def __init__(self, base_url: str, record: dict[str, Any], pause: float = 0.1, limit_seconds: float = 600.0):
        self.base_url, self.record, self.pause, self.limit_seconds = base_url, record, pause, limit_seconds
        self.answers: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-recommendations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        began, n = time.monotonic(), 0
        headers = {"Authorization": f"Bearer {self.record['token']}"}
        with httpx.Client(base_url=self.base_url, timeout=30.0, headers=headers) as http:
            while not self._stop.is_set() and time.monotonic() - began < self.limit_seconds:
                player = self.record["players"][n % len(self.record["players"])]
                n += 1
                answer: dict[str, Any] = {"at": time.time(), "player": player}
                sent = time.monotonic()
                try:
                    response = http.get(f"/v1/games/{self.record['game_id']}/players/{player}/recommendations?n=5")
                except httpx.TimeoutException as exc:
                    answer.update(status=None, error=type(exc).__name__)
                except httpx.TransportError as exc:  # the process restarting: nothing listens for a moment
                    answer.update(status=0, error=type(exc).__name__)
                else:
                    answer.update(status=response.status_code, retry_after=response.headers.get("Retry-After"),
                                  fallback=response.headers.get(FALLBACK_HEADER))
                    if response.status_code == 200:
                        body = response.json()
                        answer.update(model_version=body["model_version"],
                                      items=[p["item_id"] for p in body["items"]])
                    else:
                        answer["body"] = response.text[:300]
                answer["seconds"] = round(time.monotonic() - sent, 3)
                self.answers.append(answer)
                self._stop.wait(self.pause)


def start_requests(configuration: dict[str, Any] | None = None, pause: float = 0.1) -> str:
    """Start steady recommendation requests for the trained model's players."""
    state = run_dir.read(configuration, "platform")
    requests = RecommendationRequests(state["base_url"], run_dir.read(configuration, "recommender"), pause=pause)
    _requests[run_dir.run_dir(configuration)] = requests
    requests.start()
    return f"asking every {pause:g}s"


def stop_requests(configuration: dict[str, Any] | None = None, seconds: float = 60.0) -> dict[str, int]:
    """Stop the recommendation requests once one sent after the fault's removal was answered (or
    `seconds` later); keep their answers for the probes."""
    requests = _requests.pop(run_dir.run_dir(configuration), None)
    if requests is None:
        return {}
    try:
        removed = float(run_dir.read(configuration, "marks").get("removed", 0.0))
    except FileNotFoundError:
        removed = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(
            a.get("status") == 200 and a["at"] >= removed for a in list(requests.answers)):
        time.sleep(0.1)
    requests.stop()
    run_dir.write(configuration, "recommendation-answers", {"answers": requests.answers})
    return {"answers": len(requests.answers), "ok": sum(1 for a in requests.answers if a.get("status") == 200)}


def recommendations_kept_coming(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every recommendation request got a 200 (a fallback with its header allowed) or a 503 with
    Retry-After, none a 500 or no answer; and they were answered again after the fault."""
    try:
        answers = run_dir.read(configuration, "recommendation-answers")["answers"]
        removed = float(run_dir.read(configuration, "marks")["removed"])
    except (FileNotFoundError, KeyError):
        return {"ok": True, "violations": [], "note": "before the fault"}
    violations = checks.recommendations_answered(answers, removed)
    return {"ok": not violations, "violations": violations, "answers": len(answers),
            "fallbacks": sum(1 for a in answers if a.get("fallback")),
            "unreachable": sum(1 for a in answers if a.get("status") == 0)}


def model_unchanged(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trained model answers its players as it did before the fault: same version, same items."""
    try:
        record = run_dir.read(configuration, "recommender")
    except FileNotFoundError:
        return {"ok": True, "violations": [], "note": "before the model"}
    state = run_dir.read(configuration, "platform")
    with httpx.Client(base_url=state["base_url"], timeout=30) as http:
        try:
            now = {p: _picks(http, record["game_id"], record["token"], p) for p in record["players"]}
        except httpx.HTTPError as exc:
            return {"ok": False, "violations": [f"the recommender did not answer: {exc}"]}
    violations = checks.same_answers(record["baseline"], now)
    return {"ok": not violations, "violations": violations, "now": now}
