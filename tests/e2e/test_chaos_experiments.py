"""The chaos experiments in short form, each on a platform of its own: the hypothesis holds through
the fault (a few seconds of it), with a fixed seed so a failure can be replayed. `make test` runs
the quickest one; the others are marked `chaos` (`make test-chaos` runs them)."""

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
    shipped = {"kafka-broker-killed", "bus-latency", "postgres-killed", "cpu-stress", "zone-lost",
               "recommender-memory", "processor-frozen", "processor-partitioned", "bootstrap-unresolvable"}
    assert shipped == experiments().keys()
    for path in experiments().values():
        experiment = json.loads(path.read_text())
        assert experiment["title"] and experiment["steady-state-hypothesis"]["probes"]


CHAOS = pytest.mark.chaos


# Each fault holds 3 s, except those of a processor cut off from the bus: they must outlast the 6 s
# session timeout; the latency's, long enough for a few acknowledgements to pass through it; and the
# unresolvable name's, longer than ingest's 5 s delivery timeout, or no request is refused in it.
@pytest.mark.parametrize(("name", "seed", "duration"), [
    ("postgres-killed", 3, 3.0),
    ("kafka-broker-killed", 5, 3.0),
    pytest.param("bus-latency", 2, 5.0, marks=CHAOS),
    pytest.param("cpu-stress", 11, 3.0, marks=CHAOS),
    ("zone-lost", 7, 3.0),
    pytest.param("recommender-memory", 6, 5.0, marks=CHAOS),
    pytest.param("processor-frozen", 13, 8.0, marks=CHAOS),
    ("processor-partitioned", 17, 8.0),
    pytest.param("bootstrap-unresolvable", 19, 10.0, marks=CHAOS),
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
