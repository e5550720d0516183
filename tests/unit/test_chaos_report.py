"""The chaos report: a row per run with its verdict and violations, and plots around the fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gamemetrics.chaos.report import RunRecord, lag_series, load_runs, per_second, render, write_lag_images


def probe(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"activity": {"name": name}, "status": "succeeded", "output": output}


def write_run(root: Path, name: str, ok: bool) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    after = [probe("ready-within", {"ok": True, "violations": [], "recovered_after": 4.5}),
             probe("stored-exactly-once", {"ok": ok, "violations": [] if ok else ["1 acknowledged events were"
                                                                                   " not stored, e.g. ['x']"]})]
    journal = {"status": "completed", "deviated": not ok, "experiment": {"title": f"title of {name}"},
               "steady_states": {"before": {"probes": []}, "after": {"probes": after}}, "run": []}
    (folder / "journal.json").write_text(json.dumps(journal))
    answers = [{"at": 100.2, "status": 200, "seconds": 0.01}, {"at": 101.5, "status": 503, "seconds": 0.5,
                                                              "retry_after": "1"},
               {"at": 102.1, "status": None, "seconds": 30.0}, {"at": 103.0, "status": 200, "seconds": 0.02}]
    (folder / "traffic.json").write_text(json.dumps({"started": 100.0, "answers": answers,
                                                     "acknowledged": ["a", "b", "c", "d"], "undelivered": []}))
    (folder / "marks.json").write_text(json.dumps({"fault": 101.0, "removed": 102.5}))
    (folder / "lag.json").write_text(json.dumps({"samples": [[99.0, 0], [100.5, 3], [102.0, 40], [104.0, 0]]}))


def test_the_page_has_a_verdict_per_run_and_plots_around_the_fault(tmp_path: Path) -> None:
    write_run(tmp_path, "20260101T000000-postgres-killed-3", ok=True)
    write_run(tmp_path, "20260101T000100-postgres-killed-4", ok=False)
    (tmp_path / "20260101T000200-broke-off").mkdir()  # no journal: not a run to show
    runs = load_runs(tmp_path)
    assert [r.folder.name for r in runs] == ["20260101T000000-postgres-killed-3", "20260101T000100-postgres-killed-4"]
    page = render(runs)
    assert page.count("class='held'>held") == 1 and page.count("class='violated'>violated") == 1
    assert "stored-exactly-once: 1 acknowledged events were not stored, e.g. [&#x27;x&#x27;]" in page
    assert "<td>4.5</td>" in page
    assert page.count("<polyline") == 8 and page.count('class="mark"') == 16
    assert page.count("consumer lag (events behind, all groups) (max 40)") == 2


def test_per_second_counts_events_latency_and_refusals() -> None:
    answers = [{"at": 10.1, "status": 200, "seconds": 0.01}, {"at": 10.9, "status": 200, "seconds": 0.03},
               {"at": 11.5, "status": 503, "seconds": 0.5}, {"at": 13.2, "status": None, "seconds": 30.0}]
    run = RunRecord(Path("run"), {}, {"started": 10.0, "answers": answers, "acknowledged": list("abcd")}, {})
    series = per_second(run)
    assert series["events acknowledged / s"] == [(0.0, 4.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]
    assert series["refused or unanswered / s"] == [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)]
    assert series["worst latency (ms)"][0] == (0.0, 30.0) and series["worst latency (ms)"][3] == (3.0, 30000.0)


def test_the_lag_series_starts_with_the_traffic_and_is_written_as_an_svg_per_run(tmp_path: Path) -> None:
    write_run(tmp_path, "20260101T000000-kafka-broker-killed-5", ok=True)
    (run,) = load_runs(tmp_path)
    assert lag_series(run) == [(0.5, 3.0), (2.0, 40.0), (4.0, 0.0)]  # the sample before the traffic left out
    (written,) = write_lag_images([run])
    image = written.read_text()
    assert written.name == "lag.svg" and image.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert "<title>consumer lag (events behind, all groups)</title>" in image and image.count("<polyline") == 1
    assert image.count('class="mark"') == 2  # the fault's start and its removal
    no_lag = RunRecord(tmp_path / "none", {}, {"started": 1.0}, {})
    assert write_lag_images([no_lag]) == []
