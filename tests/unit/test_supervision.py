"""The restart policy of `gamemetrics up`, on real child processes: restarts after a backoff, counts,
records, and a crash loop that stops."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gamemetrics.settings import RestartSettings
from gamemetrics.supervision import CrashLoop, Supervisor, describe_exit, supervised_processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
FAILER = [sys.executable, "-c", "import sys; sys.exit(3)"]


def policy(**changes: float) -> RestartSettings:
    values: dict[str, float] = {"backoff_seconds": 0.1, "backoff_max_seconds": 0.4, "stable_seconds": 5.0,
                                "max_crashes": 4}
    values.update(changes)
    return RestartSettings.model_validate(values)


def tick_until(supervisor: Supervisor, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        supervisor.tick()
        time.sleep(0.02)


def stop_all(supervisor: Supervisor) -> None:
    for process in supervisor.processes().values():
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_killed_process_is_restarted_after_the_backoff_counted_and_recorded(tmp_path: Path) -> None:
    logged: list[str] = []
    supervisor = Supervisor(policy(), tmp_path / "processes.json", log=logged.append)
    first = supervisor.start("processor 1", SLEEPER, dict(os.environ))
    try:
        assert supervised_processes(tmp_path) == [
            {"name": "processor 1", "pid": first.pid, "state": "running", "restarts": 0, "last_exit": None,
             "last_exit_at": None, "exits": []}]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        supervisor.tick()
        recorded = supervised_processes(tmp_path)
        assert recorded is not None and recorded[0]["state"] == "waiting"
        assert recorded[0]["last_exit"] == "killed by SIGKILL"
        tick_until(supervisor, lambda: supervisor.members["processor 1"].process.pid != first.pid)
        assert time.monotonic() - killed_at >= 0.1, "restarted before the backoff"
        second = supervisor.members["processor 1"].process
        assert second.poll() is None
        recorded = supervised_processes(tmp_path)
        assert recorded is not None
        assert (recorded[0]["pid"], recorded[0]["state"], recorded[0]["restarts"]) == (second.pid, "running", 1)
        assert [e["exit"] for e in recorded[0]["exits"]] == ["killed by SIGKILL"]
        assert any("killed by SIGKILL" in line and "restarting in 0.1s" in line for line in logged), logged
        assert any("restarted (restart 1" in line for line in logged), logged
    finally:
        stop_all(supervisor)


def test_a_process_that_keeps_dying_at_start_stops_with_the_reason_after_doubling_waits(tmp_path: Path) -> None:
    logged: list[str] = []
    supervisor = Supervisor(policy(), tmp_path / "processes.json", log=logged.append)
    supervisor.start("ingest", FAILER, dict(os.environ))
    began = time.monotonic()
    with pytest.raises(CrashLoop) as stopped:
        tick_until(supervisor, lambda: False)
    assert "ingest exited with code 3, its 4th death in a row within 5s of starting" in str(stopped.value)
    assert supervisor.members["ingest"].restarts == 3
    # 0.1 + 0.2 + 0.4 seconds of backoff before the three restarts.
    assert time.monotonic() - began >= 0.7
    assert [line.split("restarting in ")[1] for line in logged if "restarting in" in line] == ["0.1s", "0.2s", "0.4s"]
    recorded = json.loads((tmp_path / "processes.json").read_text())
    assert len(recorded["processes"][0]["exits"]) == 4


def test_a_process_that_ran_stably_starts_its_count_and_backoff_anew(tmp_path: Path) -> None:
    short_lived = [sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(1)"]
    supervisor = Supervisor(policy(stable_seconds=0.2, max_crashes=2), None, log=lambda _: None)
    supervisor.start("processor 2", short_lived, dict(os.environ))
    try:
        tick_until(supervisor, lambda: supervisor.members["processor 2"].restarts >= 3)
        assert supervisor.members["processor 2"].crashes == 1
    finally:
        stop_all(supervisor)


def test_a_member_started_without_restart_is_left_dead_and_stops_nothing(tmp_path: Path) -> None:
    logged: list[str] = []
    supervisor = Supervisor(policy(max_crashes=1), tmp_path / "processes.json", log=logged.append)
    supervisor.start("simulator", FAILER, dict(os.environ), restart=False)
    tick_until(supervisor, lambda: supervisor.members["simulator"].last_exit is not None)
    for _ in range(5):
        supervisor.tick()
    assert supervisor.members["simulator"].restarts == 0
    assert logged == ["simulator exited with code 3; not restarted"]
    recorded = supervised_processes(tmp_path)
    assert recorded is not None and recorded[0]["state"] == "stopped"


def test_the_backoff_doubles_up_to_its_bound_and_exits_are_described() -> None:
    supervisor = Supervisor(policy(backoff_seconds=0.5, backoff_max_seconds=30.0), None)
    assert [supervisor.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(0) == "exited with code 0"


def test_a_record_left_by_an_up_that_is_gone_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / "processes.json").write_text(json.dumps({"pid": 2**22 + 12345, "processes": []}))
    assert supervised_processes(tmp_path) is None
    assert supervised_processes(tmp_path / "missing") is None


def test_status_shows_each_process_with_its_restarts_and_last_exit(capsys: pytest.CaptureFixture[str]) -> None:
    from gamemetrics.status import print_status

    print_status({"games": [], "consumer_groups": [], "processes": [
        {"name": "processor 1", "pid": 4242, "state": "running", "restarts": 3, "last_exit": "killed by SIGKILL",
         "last_exit_at": "2026-01-01T00:00:00+00:00", "exits": []},
        {"name": "ingest", "pid": 4343, "state": "waiting", "restarts": 0, "last_exit": None, "last_exit_at": None,
         "exits": []}]})
    out = capsys.readouterr().out
    assert "Processes" in out
    row = next(line for line in out.splitlines() if "processor 1" in line)
    assert "4242" in row and "running" in row and " 3 " in row and "killed by SIGKILL" in row
    assert "waiting" in next(line for line in out.splitlines() if "ingest" in line)
