"""Running experiments with Chaos Toolkit: one folder per run with its journal, a verdict per run."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gamemetrics.chaos.run_dir import RUN_DIR_VARIABLE, SEED_VARIABLE

EXPERIMENTS = Path(__file__).with_name("experiments")
DURATION_VARIABLE = "GAMEMETRICS_CHAOS_DURATION"


def experiments() -> dict[str, Path]:
    """The experiment files shipped with the package, by name."""
    return {path.stem: path for path in sorted(EXPERIMENTS.glob("*.json"))}


def title(path: Path) -> str:
    return str(json.loads(path.read_text())["title"])


@dataclass
class Outcome:
    """One run: its experiment, seed, folder and whether the hypothesis held throughout."""

    name: str
    seed: int
    folder: Path
    status: str
    deviated: bool
    violations: list[str]

    @property
    def ok(self) -> bool:
        return self.status == "completed" and not self.deviated and not self.violations


def violations(journal: dict[str, Any]) -> list[str]:
    """What the probes reported as violated, before, during and after the fault."""
    found: list[str] = []
    hypotheses = [journal.get("steady_states", {}).get(when) or {} for when in ("before", "after")]
    runs = [run for h in hypotheses for run in h.get("probes", [])] + list(journal.get("run", []))
    for run in runs:
        name = run.get("activity", {}).get("name", "?")
        output = run.get("output")
        if run.get("status") == "failed":
            found.append(f"{name}: {run.get('exception', ['failed'])[-1].strip()}")
        elif isinstance(output, dict) and output.get("ok") is False:
            found += [f"{name}: {v}" for v in output.get("violations", [])]
    return found


def run(name: str, root: Path, *, seed: int | None = None, duration: float | None = None) -> Outcome:
    """Run experiment `name` (shipped, or a path to an experiment file) in a new folder under `root`."""
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
    from chaoslib.loader import load_experiment

    path = experiments().get(name) or Path(name)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    folder = root / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.stem}-{seed}"
    folder.mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in (RUN_DIR_VARIABLE, SEED_VARIABLE, DURATION_VARIABLE)}
    os.environ[RUN_DIR_VARIABLE] = str(folder)
    os.environ[SEED_VARIABLE] = str(seed)
    os.environ[DURATION_VARIABLE] = "" if duration is None else str(duration)
    try:
        try:
            experiment = load_experiment(str(path))
            ensure_experiment_is_valid(experiment)  # a probe or action that does not exist fails here, not mid-run
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)  # nothing ran: no run to report
            raise
        journal = run_experiment(experiment, settings={})
    finally:
        _stop_what_is_left(folder)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    (folder / "journal.json").write_text(json.dumps(journal, indent=1, default=str))
    return Outcome(path.stem, seed, folder, str(journal.get("status")), bool(journal.get("deviated")),
                   violations(journal))


def _stop_what_is_left(folder: Path) -> None:
    """A run that broke off before its control's end still stops its platform and database."""
    from gamemetrics.chaos import platform

    try:
        state = json.loads((folder / "platform.json").read_text())
    except FileNotFoundError:
        return
    platform.stop(state)
    platform.stop_restarted(folder)
    platform.stop_postgres(state)
    platform.remove_data(state)
