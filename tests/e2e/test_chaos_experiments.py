"""The chaos experiments in short form, each on a platform of its own: the hypothesis holds through
the fault (a few seconds of it), with a fixed seed so a failure can be replayed."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gamemetrics.chaos.runner import experiments, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # Not under pytest's temporary root, for the same reason as the e2e platform's data dir.
    folder = Path(tempfile.mkdtemp(prefix="gamemetrics-chaos-runs-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_shipped_experiments_are_listed_with_their_titles() -> None:
    shipped = {"kafka-broker-killed", "postgres-killed", "zone-lost", "processor-frozen", "cpu-stress"}
    assert shipped <= experiments().keys()
    for path in experiments().values():
        experiment = json.loads(path.read_text())
        assert experiment["title"] and experiment["steady-state-hypothesis"]["probes"]


# Each fault holds 3 s, except the frozen processor's: it must outlast the 6 s session timeout.
@pytest.mark.parametrize(("name", "seed", "duration"), [
    ("postgres-killed", 3, 3.0), ("kafka-broker-killed", 5, 3.0), ("zone-lost", 7, 3.0), ("processor-frozen", 13, 8.0),
])
def test_the_hypothesis_holds_through_the_fault(root: Path, name: str, seed: int, duration: float) -> None:
    outcome = run(name, root, seed=seed, duration=duration)
    journal = json.loads((outcome.folder / "journal.json").read_text())
    assert outcome.ok, f"{name} (seed {seed}) {outcome.status}: {outcome.violations}\n" + (
        outcome.folder / "platform.log").read_text(errors="replace")[-3000:]
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    traffic = json.loads((outcome.folder / "traffic.json").read_text())
    assert traffic["acknowledged"], "no event was acknowledged"
    data_dir = json.loads((outcome.folder / "platform.json").read_text())["data_dir"]
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if data_dir in " ".join(p.info["cmdline"] or ())]
    assert not left, f"processes of the run left running: {left}"
    assert not Path(data_dir).exists(), "the run's data dir was left behind"
