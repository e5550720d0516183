"""The memory-pressure fault on a real process and cgroup: the limit is reached inside the run's
cgroup alone, everything is moved back and the cgroup removed; the recommender's probes report an
answer that broke the hypothesis, a recommender that never came back, a changed model, a pressure
that was never felt."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gamemetrics.chaos import checks, memory, recommendations

Configuration = dict[str, Any]


@pytest.fixture
def run(tmp_path: Path) -> Configuration:
    (tmp_path / "run").mkdir()
    return {"run_dir": str(tmp_path / "run")}


def write(configuration: Configuration, name: str, data: dict[str, Any]) -> None:
    (Path(configuration["run_dir"]) / f"{name}.json").write_text(json.dumps(data))


# Needs what experiment 6 needs, root and the cgroup v1 memory controller: with the experiments.
@pytest.mark.chaos
def test_the_limit_is_reached_inside_the_runs_cgroup_and_everything_is_moved_back(run: Configuration) -> None:
    # A process holding 64 MiB, as the recommender holds its own.
    holder = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 * 2**20); time.sleep(60)"])
    try:
        time.sleep(1.0)
        squeezed = memory.confine(run, holder.pid, limit_mb=32, vm_mb=64, seconds=10)
        group = Path(squeezed["cgroup"])
        assert str(holder.pid) in (group / "cgroup.procs").read_text().split()
        assert squeezed["limit_mb"] == 32 and squeezed["resident_mb"] >= 60, squeezed
        time.sleep(3.0)
        felt = memory.release_memory(run)
        assert felt["limit_hits"] > 0, felt
        assert felt["max_usage_mb"] <= squeezed["limit_mb"] + 1, felt
        assert not group.exists(), "the run's cgroup was left behind"
        verdict = memory.pressure_was_felt(run)
        assert verdict["ok"], verdict
        if holder.poll() is None:  # it may have been the OOM killer's choice; if not, it is back at the root
            assert str(holder.pid) in (memory.MEMORY_ROOT / "cgroup.procs").read_text().split()
    finally:
        holder.kill()
        holder.wait()


def test_pressure_was_felt_reports_a_limit_never_reached(run: Configuration) -> None:
    assert memory.pressure_was_felt(run)["note"] == "before the fault"
    write(run, "memory", {"limit_mb": 900.0, "limit_hits": 0, "oom_kills": 0})
    assert memory.pressure_was_felt(run)["violations"] == [
        "the 900.0 MiB limit was never reached: no memory pressure was felt"]


def test_recommendations_kept_coming_reports_a_500_a_hang_a_bare_503_and_no_return(run: Configuration) -> None:
    write(run, "marks", {"fault": 10.0, "removed": 20.0})
    answers = [{"status": 200, "at": 5.0}, {"status": 200, "at": 12.0, "fallback": "popular"},
               {"status": 0, "at": 13.0, "error": "ConnectError"}, {"status": 503, "retry_after": "5", "at": 14.0},
               {"status": 500, "at": 15.0, "body": "Internal Server Error"}, {"status": None, "at": 16.0},
               {"status": 503, "retry_after": None, "at": 17.0}]
    write(run, "recommendation-answers", {"answers": answers})
    verdict = recommendations.recommendations_kept_coming(run)
    assert verdict["violations"] == [
        "a 500 at 15.0: Internal Server Error", "no recommendation within the timeout at 16.0",
        "a 503 without Retry-After at 17.0",
        "no recommendation was answered after the fault: the recommender did not come back"]
    write(run, "recommendation-answers", {"answers": answers[:4] + [{"status": 200, "at": 21.0}]})
    verdict = recommendations.recommendations_kept_coming(run)
    assert verdict["ok"] and verdict["fallbacks"] == 1 and verdict["unreachable"] == 1, verdict


def test_same_answers_reports_a_changed_model_but_not_a_cached_answer() -> None:
    before = {"knight-0": {"model_version": 1, "items": ["a", "b"], "fallback": None}}
    cached = {"knight-0": {"model_version": 1, "items": ["a", "b"], "fallback": "cache"}}
    assert checks.same_answers(before, cached) == []
    changed = {"knight-0": {"model_version": 2, "items": ["a", "b"], "fallback": None}}
    assert checks.same_answers(before, changed) == [
        "knight-0: (1, ['a', 'b']) before the fault, (2, ['a', 'b']) after"]
    assert checks.same_answers(before, {}) == ["knight-0: (1, ['a', 'b']) before the fault, None after"]
