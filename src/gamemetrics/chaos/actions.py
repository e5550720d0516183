"""The experiments' actions: traffic on and off, waits at seeded moments, the faults and their removal."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from gamemetrics.chaos import run_dir
from gamemetrics.chaos.traffic import Traffic

_traffic: dict[Path, Traffic] = {}


def start_traffic(configuration: dict[str, Any] | None = None, batch: int = 20, pause: float = 0.1) -> str:
    """Start steady traffic with the run's write key."""
    state = run_dir.read(configuration, "platform")
    traffic = Traffic(state["base_url"], state["write_key"], batch=batch, pause=pause)
    _traffic[run_dir.run_dir(configuration)] = traffic
    traffic.start()
    return f"sending {batch} events every {pause:g}s to {state['base_url']}"


def stop_traffic(configuration: dict[str, Any] | None = None) -> dict[str, int]:
    """Stop the traffic after its batch in hand is acknowledged; keep its record for the probes."""
    traffic = _traffic.pop(run_dir.run_dir(configuration), None)
    if traffic is None:
        return {}
    traffic.stop()
    record = traffic.record()
    run_dir.write(configuration, "traffic", record)
    return {"acknowledged": len(record["acknowledged"]), "answers": len(record["answers"]),
            "undelivered": len(record["undelivered"])}


def seeded_random(configuration: dict[str, Any] | None) -> random.Random:
    seed = (configuration or {}).get("seed") or os.environ.get(run_dir.SEED_VARIABLE) or "0"
    return random.Random(int(seed))


def pause_at_seeded_moment(configuration: dict[str, Any] | None = None, low: float = 1.0,
                           high: float = 5.0) -> float:
    """Wait a time drawn from the run's seed between `low` and `high` seconds; the fault comes then."""
    seconds = seeded_random(configuration).uniform(low, high)
    time.sleep(seconds)
    mark(configuration, "fault")
    return round(seconds, 3)


def hold_fault(configuration: dict[str, Any] | None = None, seconds: float = 5.0) -> float:
    """Keep the fault for `seconds` (the --duration of the run when it sets one)."""
    duration = float((configuration or {}).get("duration") or os.environ.get("GAMEMETRICS_CHAOS_DURATION")
                     or seconds)
    time.sleep(duration)
    mark(configuration, "removed")
    return duration


def mark(configuration: dict[str, Any] | None, name: str) -> None:
    """Note when `name` happened, for the probes that measure recovery from it."""
    try:
        marks = run_dir.read(configuration, "marks")
    except FileNotFoundError:
        marks = {}
    marks[name] = time.time()
    run_dir.write(configuration, "marks", marks)


def kill_postgres(configuration: dict[str, Any] | None = None) -> list[int]:
    """SIGKILL the platform's PostgreSQL server and every backend of it, as a lost pod's would be."""
    state = run_dir.read(configuration, "platform")
    pid_file = Path(state["data_dir"]) / "postgres" / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    victims = [postmaster, *postmaster.children(recursive=True)]
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    return [v.pid for v in victims]


def restart_postgres(configuration: dict[str, Any] | None = None) -> str:
    """Start the server again on its files (crash recovery replays its WAL), as a restarted pod would."""
    from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres

    state = run_dir.read(configuration, "platform")
    EmbeddedPostgres(Path(state["data_dir"]), stop_on_exit=False)
    mark(configuration, "removed")
    return "restarted"
