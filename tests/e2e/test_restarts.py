"""`gamemetrics up` restarts a processor it lost to SIGKILL, shows it in `status`, and the events
sent before, during and after are each stored exactly once."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.e2e.conftest import PATIENCE_S, RunningPlatform, new_event


def processes(platform: RunningPlatform) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in platform.cli("status", "--json")["processes"]}


def test_a_killed_processor_comes_back_and_every_event_is_stored_once(running: RunningPlatform) -> None:
    before = processes(running)
    assert "processor 1" in before, before
    victim = before["processor 1"]
    assert victim["state"] == "running"
    stored_before, _ = running.counters()
    sent: list[str] = []

    def send(batches: int, player: str) -> None:
        for _ in range(batches):
            events = [new_event("level_complete", player, properties={"level": n, "score": n}) for n in range(20)]
            answer = running.send(events)
            assert answer["accepted"] == len(events), answer
            sent.extend(e["event_id"] for e in events)

    send(5, "restart-player-before")
    os.kill(victim["pid"], signal.SIGKILL)
    # Ingest keeps acknowledging while the processor is down: the bus holds the events.
    send(5, "restart-player-during")
    deadline = time.monotonic() + PATIENCE_S
    while True:
        now = processes(running)["processor 1"]
        if now["state"] == "running" and now["pid"] != victim["pid"]:
            break
        assert time.monotonic() < deadline, f"processor 1 was not restarted: {now}\n{running.log_tail()}"
        time.sleep(0.2)
    assert now["restarts"] == victim["restarts"] + 1
    assert now["last_exit"] == "killed by SIGKILL"
    assert "processor 1 killed by SIGKILL" in running.log_path.read_text()
    send(5, "restart-player-after")

    stored = running.stored(sent)
    assert set(stored) == set(sent), f"{len(set(sent) - set(stored))} acknowledged events are missing"
    stored_after, dead = running.counters()
    assert stored_after - stored_before == len(sent), "an event was stored twice or not at all"
    rows = running.query("SELECT event_id, count(*) AS n FROM events WHERE event_id = ANY(%s::uuid[])"
                         " GROUP BY 1 HAVING count(*) > 1", (sent,))
    assert rows == []
    # The restarted processor answers its probes once it has started its health port again.
    running.wait_for(lambda: running.http.get("/readyz").status_code == 200, "/readyz to recover after the restart")
