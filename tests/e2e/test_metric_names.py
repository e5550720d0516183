"""Every metric of ours that an alert rule or a Grafana panel reads is served by the platform's `/metrics`.

The shared platform is scraped after traffic that takes every path (accepted, rejected, refused,
stored, duplicate, dead-lettered; a recommendation and its feedback, a notification delivered); a
metric that only a failure or a retention run moves is looked up in one `serve` process instead, as
a pod runs it (one process, every family declared with its HELP and TYPE)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid

import httpx

from tests.conftest import free_port
from tests.deploy.promql import OWN_PREFIX, used_names
from tests.e2e.conftest import PATIENCE_S, RunningPlatform, new_event

# Counters that only a failure or a retention run moves: the traffic here cannot make them appear under `up`.
FAILURE_ONLY = {"gamemetrics_consumer_failures_total", "gamemetrics_retention_days_total"}
SERVE = "analytics,retention"  # the process whose declared families are looked up
_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum"), "counter": ("",),
             "gauge": ("",)}


def exposed(text: str) -> set[str]:
    """Metric names of an exposition: its samples' names and every family its TYPE lines declare."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= {family + suffix for suffix in _SUFFIXES.get(kind, ("",))}
    return names


def traffic(running: RunningPlatform) -> None:
    """Events down every path that moves a metric of ingest and the processor."""
    player = f"metrics-{uuid.uuid4().hex[:8]}"
    good = new_event("session_start", player)
    unpriced = new_event("purchase", player, properties={"item_id": "gem", "price": 1, "currency": "XYZ"})
    bad = {"event_type": "session_start"}  # no id, player or time: rejected by ingest
    running.send([good, unpriced, bad])
    running.send([good])  # the same id again: a duplicate for the processor
    assert running.post("/v1/events", {"events": [new_event()]}, key="wk_not_a_key").status_code == 401
    running.wait_drained()
    running.wait_for(lambda: bool(running.dead_letters([unpriced["event_id"]])), "the unpriced purchase dead-lettered")


def _token(running: RunningPlatform, scopes: str) -> dict[str, str]:
    client = running.cli("admin", "create-client", "--tenant", running.tenant_id, "--scopes", scopes)
    response = httpx.post(f"{running.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client["client_id"], client["client_secret"]), timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def service_traffic(running: RunningPlatform) -> None:
    """A recommendation with feedback on it, and a notification delivered in the app."""
    auth = _token(running, "recommendations:read notifications:send players:write")
    game, player = running.game_id, f"metrics-{uuid.uuid4().hex[:8]}"
    profile = running.http.put(f"/v1/games/{game}/players/{player}", json={"traits": {"name": "Ada"}}, headers=auth)
    assert profile.status_code in (200, 201), profile.text
    answer = running.http.get(f"/v1/games/{game}/players/{player}/recommendations?n=3", headers=auth)
    assert answer.status_code == 200, answer.text
    shown = running.http.post(f"/v1/games/{game}/recommendations/feedback", headers=auth, json={
        "recommendation_id": answer.json()["recommendation_id"], "kind": "shown", "player_id": player,
        "item_id": "sword", "source": "popular"})
    assert shown.status_code == 201, shown.text
    template = running.http.put(f"/v1/games/{game}/notification-templates/metrics", headers=auth, json={
        "category": "lifecycle", "content": {"in_app": {"title": "Hello", "body": "Hello {{ name }}"}},
        "sample": {"name": "Ada"}})
    assert template.status_code in (200, 201), template.text
    sent = running.http.post("/v1/notifications", headers=auth, json={
        "game_id": game, "player_id": player, "template": "metrics", "data": {"name": "Ada"}, "channels": ["in_app"]})
    assert sent.status_code == 202, sent.text
    status = f"/v1/notifications/{sent.json()['id']}"
    running.wait_for(lambda: running.http.get(status, headers=auth).json()["state"] == "sent", "the notification sent")


def scrape_one_serve_process(running: RunningPlatform) -> str:
    """/metrics of `gamemetrics serve analytics,retention` beside the platform, on the same database."""
    port = free_port()
    env = {k: v for k, v in running.env.items() if not k.startswith("PROMETHEUS_")}
    env.update(GAMEMETRICS_PORT=str(port), GAMEMETRICS_DATABASE_URL=running.database_url)
    process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", SERVE], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            assert process.poll() is None, f"serve {SERVE} exited: {process.stderr.read().decode()[-2000:]}"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                if response.status_code == 200:
                    return response.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve {SERVE} did not answer /metrics"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_every_metric_a_rule_or_panel_reads_is_served(running: RunningPlatform) -> None:
    ours = {name for name in used_names() if name.startswith(OWN_PREFIX)}
    assert len(ours) > 10
    assert {"gamemetrics_notification_attempts_total", "gamemetrics_recommendations_total",
            "gamemetrics_retention_days_total"} <= ours
    traffic(running)
    service_traffic(running)
    served = exposed(running.http.get("/metrics").text)
    assert ours - FAILURE_ONLY - served == set(), "used by a rule or panel, not served under `up`"
    declared = exposed(scrape_one_serve_process(running))
    assert (ours - served) - declared == set(), "used by a rule or panel, neither served nor declared"
    assert FAILURE_ONLY - declared == set(), "a failure's counter is not declared by a serve process"
