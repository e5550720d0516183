"""The consumer lag over a run: sampled from `gamemetrics status --json` while the traffic runs and
while the hypothesis waits for it to drain, kept as one series in the run's folder."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from gamemetrics.chaos import platform, run_dir

_samplers: dict[Path, LagSampler] = {}


def lag_of(state: dict[str, Any]) -> int:
    """Every consumer group's lag, summed, now."""
    env = dict(state["env"])
    if "data_dir" in state:
        # Named, the platform's database is only used: a command given the embedded one's data dir
        # alone joins its users and stops it on leaving, which two such commands at once can get
        # wrong and stop the server under the platform.
        env["GAMEMETRICS_DATABASE_URL"] = platform.database_url_of(state)
    report = platform.cli(env, "status", "--json")
    return sum(int(group["lag"]) for group in report["consumer_groups"])


def record(configuration: dict[str, Any] | None, samples: list[tuple[float, int]]) -> None:
    """Add `samples` (time, lag) to the run's series."""
    try:
        kept = run_dir.read(configuration, "lag")["samples"]
    except FileNotFoundError:
        kept = []
    run_dir.write(configuration, "lag", {"samples": sorted([*kept, *map(list, samples)])})


class LagSampler:
    """A thread asking for the lag every `interval` seconds until stopped (or `limit_seconds`)."""

    def __init__(self, state: dict[str, Any], interval: float = 1.0, limit_seconds: float = 600.0) -> None:
        self.state, self.interval, self.limit_seconds = state, interval, limit_seconds
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(60)
        return self.samples

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - began < self.limit_seconds:
            # The platform mid-fault may not answer: no sample this time.
            with contextlib.suppress(RuntimeError, ValueError, OSError, subprocess.TimeoutExpired):
                self.samples.append((time.time(), lag_of(self.state)))
            self._stop.wait(self.interval)


def start_sampling(configuration: dict[str, Any] | None) -> None:
    sampler = LagSampler(run_dir.read(configuration, "platform"))
    _samplers[run_dir.run_dir(configuration)] = sampler
    sampler.start()


def stop_sampling(configuration: dict[str, Any] | None) -> None:
    sampler = _samplers.pop(run_dir.run_dir(configuration), None)
    if sampler is not None:
        record(configuration, sampler.stop())
