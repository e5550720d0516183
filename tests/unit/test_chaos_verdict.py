"""A run's verdict from its Chaos Toolkit journal: any probe's violation, before, during or after the
fault, or an activity that failed, makes the run fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gamemetrics.chaos.runner import Outcome, violations


def activity(name: str, status: str = "succeeded", output: Any = None, exception: list[str] | None = None
             ) -> dict[str, Any]:
    run: dict[str, Any] = {"activity": {"name": name}, "status": status, "output": output}
    if exception is not None:
        run["exception"] = exception
    return run


def journal(before: list[dict[str, Any]], during: list[dict[str, Any]], after: list[dict[str, Any]] | None
            ) -> dict[str, Any]:
    return {"steady_states": {"before": {"probes": before}, "after": None if after is None else {"probes": after}},
            "run": during}


def test_violations_before_during_and_after_are_reported_with_their_probe() -> None:
    ok = {"ok": True, "violations": []}
    found = violations(journal(
        [activity("ready-within", output=ok)],
        [activity("start-traffic", output="sending"),
         activity("services-answer-during-the-fault", output={"ok": False, "violations": ["/metrics answered 500"]}),
         activity("kill-postgres", status="failed", exception=["Traceback ...\n", "RuntimeError: no postmaster\n"])],
        [activity("stored-exactly-once", output={"ok": False, "violations": ["1 events were stored more than once"]})],
    ))
    assert found == ["stored-exactly-once: 1 events were stored more than once",
                     "services-answer-during-the-fault: /metrics answered 500",
                     "kill-postgres: RuntimeError: no postmaster"]


def test_a_run_holds_only_completed_undeviated_and_without_violations() -> None:
    assert violations(journal([activity("ready", output={"ok": True, "violations": []})], [], None)) == []
    assert Outcome("x", 1, Path("."), "completed", False, []).ok
    assert not Outcome("x", 1, Path("."), "completed", True, []).ok
    assert not Outcome("x", 1, Path("."), "aborted", False, []).ok
    assert not Outcome("x", 1, Path("."), "completed", False, ["ready: /readyz answered 503"]).ok


def test_every_shipped_experiment_is_valid_for_chaos_toolkit(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    from gamemetrics.chaos.runner import experiments

    monkeypatch.setenv("GAMEMETRICS_CHAOS_RUN_DIR", str(tmp_path))
    assert len(experiments()) >= 5
    for path in experiments().values():
        ensure_experiment_is_valid(load_experiment(str(path)))  # raises naming what is wrong
