"""The consumer lag over a run: a report a second from `gamemetrics status --json --watch 1` beside the
platform (one process on one connection, so a sample costs a query, not a command's start), while the
traffic runs and while the hypothesis waits for it to drain, kept as one series in the run's folder."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gamemetrics.chaos import platform, run_dir

FIRST_REPORT_SECONDS = 60.0
"""How long a watch may take to start and make its first report on a loaded machine."""

_samplers: dict[Path, LagWatch] = {}


class LagWatch:
    """Every consumer group's lag, summed, every `interval` seconds, as (time, lag), for at most
    `limit_seconds`; reports the platform could not make mid-fault are left out."""

    def __init__(self, state: dict[str, Any], interval: float = 1.0, limit_seconds: float = 600.0) -> None:
        env = dict(state["env"])
        if "data_dir" in state:
            # Named, the platform's database is only used: a command given the embedded one's data dir
            # alone joins its users and stops it on leaving, which two such commands at once can get
            # wrong and stop the server under the platform.
            env["GAMEMETRICS_DATABASE_URL"] = platform.database_url_of(state)
        reports = max(1, int(limit_seconds / interval))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gamemetrics.cli", "status", "--json", "--watch", str(interval),
             "--count", str(reports)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True)
        self._samples: queue.Queue[tuple[float, int] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="chaos-lag", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        try:
            for line in self._process.stdout:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    report = json.loads(line)
                    if "error" not in report:
                        self._samples.put((float(report["time"]),
                                           sum(int(group["lag"]) for group in report["consumer_groups"])))
        finally:
            self._samples.put(None)  # the watch ended

    def next(self, timeout: float) -> tuple[float, int] | None:
        """The next sample, or None when none came within `timeout` or the watch ended."""
        try:
            return self._samples.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def taken(self) -> list[tuple[float, int]]:
        """The samples made so far and not yet read."""
        samples = []
        while (sample := self.next(0.0)) is not None:
            samples.append(sample)
        return samples

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=30)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._reader.join(10)


def drain(state: dict[str, Any], seconds: float) -> list[tuple[float, int]]:
    """Samples until the lag is 0 or `seconds` passed since the first (which may take a while to come)."""
    watch = LagWatch(state, limit_seconds=seconds + FIRST_REPORT_SECONDS)
    samples: list[tuple[float, int]] = []
    try:
        first = watch.next(FIRST_REPORT_SECONDS)
        if first is None:
            return samples
        samples.append(first)
        deadline = time.monotonic() + seconds
        while samples[-1][1] != 0 and (sample := watch.next(deadline - time.monotonic())) is not None:
            samples.append(sample)
        return samples
    finally:
        watch.close()


def record(configuration: dict[str, Any] | None, samples: list[tuple[float, int]]) -> None:
    """Add `samples` (time, lag) to the run's series."""
    try:
        kept = run_dir.read(configuration, "lag")["samples"]
    except FileNotFoundError:
        kept = []
    run_dir.write(configuration, "lag", {"samples": sorted([*kept, *map(list, samples)])})


def start_sampling(configuration: dict[str, Any] | None) -> None:
    _samplers[run_dir.run_dir(configuration)] = LagWatch(run_dir.read(configuration, "platform"))


def stop_sampling(configuration: dict[str, Any] | None) -> None:
    watch = _samplers.pop(run_dir.run_dir(configuration), None)
    if watch is not None:
        samples = watch.taken()
        watch.close()
        record(configuration, samples)
