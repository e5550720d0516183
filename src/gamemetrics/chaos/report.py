"""`gamemetrics chaos report`: the runs as one HTML page, a summary table and, per run, the traffic's
throughput, latency and refusals second by second and the consumer lag around the fault, as inline
SVG plots; each run's lag plot is also written as `lag.svg` in its folder."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gamemetrics.chaos.runner import violations

_WIDTH, _HEIGHT, _PAD = 640, 140, 30


@dataclass
class RunRecord:
    """What one run's folder holds, as far as it got."""

    folder: Path
    journal: dict[str, Any]
    traffic: dict[str, Any]
    marks: dict[str, float]
    lag: dict[str, Any] = field(default_factory=dict)


def load_runs(root: Path) -> list[RunRecord]:
    """Every run under `root` that wrote its journal, oldest first."""
    runs = []
    for folder in sorted(p for p in root.glob("*") if (p / "journal.json").exists()):
        def read(name: str, folder: Path = folder) -> dict[str, Any]:
            path = folder / f"{name}.json"
            data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
            return data

        runs.append(RunRecord(folder, read("journal"), read("traffic"), read("marks"), read("lag")))
    return runs


def per_second(run: RunRecord) -> dict[str, list[tuple[float, float]]]:
    """Seconds since the traffic began against events acknowledged, worst latency (ms) and refusals."""
    start = float(run.traffic.get("started") or 0.0)
    acked: dict[int, float] = defaultdict(float)
    latency: dict[int, float] = defaultdict(float)
    refused: dict[int, float] = defaultdict(float)
    batch = 0
    if run.traffic.get("answers"):
        oks = sum(1 for a in run.traffic["answers"] if a.get("status") == 200)
        batch = len(run.traffic.get("acknowledged", [])) // oks if oks else 0
    for answer in run.traffic.get("answers", []):
        second = int(float(answer["at"]) - start)
        latency[second] = max(latency[second], float(answer.get("seconds") or 0.0) * 1000)
        if answer.get("status") == 200:
            acked[second] += batch
        else:
            refused[second] += 1
    seconds = range(min(latency, default=0), max(latency, default=0) + 1)
    return {name: [(float(s), series.get(s, 0.0)) for s in seconds]
            for name, series in (("events acknowledged / s", acked), ("worst latency (ms)", latency),
                                 ("refused or unanswered / s", refused))}


LAG_TITLE = "consumer lag (events behind, all groups)"


def lag_series(run: RunRecord) -> list[tuple[float, float]]:
    """Seconds since the traffic began against the consumer lag sampled then."""
    start = float(run.traffic.get("started") or 0.0)
    return [(float(at) - start, float(lag)) for at, lag in run.lag.get("samples", []) if float(at) >= start]


def svg_image(title: str, points: list[tuple[float, float]], marks: dict[str, float]) -> str:
    """One line plot as an SVG document of its own, titled."""
    figure = svg_plot(title, points, marks)
    start = figure.find("<svg")
    if start < 0:
        return ""
    body = figure[start:figure.index("</svg>") + len("</svg>")]
    return body.replace(">", f"><title>{html.escape(title)}</title>", 1)


def svg_plot(title: str, points: list[tuple[float, float]], marks: dict[str, float]) -> str:
    """One line plot with the fault's start and removal as vertical lines."""
    if not points:
        return f"<p>{html.escape(title)}: no data</p>"
    x_max = max(x for x, _ in points) or 1.0
    y_max = max(y for _, y in points) or 1.0

    def x(v: float) -> float:
        return _PAD + v / x_max * (_WIDTH - 2 * _PAD)

    def y(v: float) -> float:
        return _HEIGHT - _PAD - v / y_max * (_HEIGHT - 2 * _PAD)

    line = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
    lines = [f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>']
    for name, at in marks.items():
        lines.append(f'<line class="mark" x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{_PAD / 2}" y2="{_HEIGHT - _PAD}"'
                     f' stroke="#d62728" stroke-dasharray="4 3"/><text x="{x(at) + 3:.1f}" y="{_PAD / 2 + 8}"'
                     f' font-size="10">{html.escape(name)}</text>')
    return (f'<figure><figcaption>{html.escape(title)} (max {y_max:g})</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}">'
            f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _PAD}" stroke="#999"/>'
            f'<text x="{_WIDTH - _PAD}" y="{_HEIGHT - 8}" font-size="10" text-anchor="end">{x_max:g} s</text>'
            f'{"".join(lines)}</svg></figure>')


def render(runs: list[RunRecord]) -> str:
    """The page: a summary row per run, then each run's plots."""
    rows, sections = [], []
    for run in runs:
        found = violations(run.journal)
        held = run.journal.get("status") == "completed" and not run.journal.get("deviated") and not found
        after = {p["activity"]["name"]: p.get("output") or {}
                 for p in (run.journal.get("steady_states", {}).get("after") or {}).get("probes", [])}
        recovered = after.get("ready-within", {}).get("recovered_after", "")
        drained = after.get("lag-drains", {}).get("drained_after", "")
        refused = after.get("refusals-well-formed", {}).get("refused", "")
        name = html.escape(run.folder.name)
        rows.append(f"<tr><td><a href='#{name}'>{name}</a></td>"
                    f"<td>{html.escape(str(run.journal.get('experiment', {}).get('title', '')))}</td>"
                    f"<td class='{'held' if held else 'violated'}'>{'held' if held else 'violated'}</td>"
                    f"<td>{recovered}</td><td>{drained}</td><td>{len(run.traffic.get('acknowledged', []))}</td>"
                    f"<td>{refused}</td><td>{html.escape('; '.join(found))}</td></tr>")
        start = float(run.traffic.get("started") or 0.0)
        marks = {k: v - start for k, v in run.marks.items()}
        plots = "".join(svg_plot(title, points, marks) for title, points in per_second(run).items())
        plots += svg_plot(LAG_TITLE, lag_series(run), marks)
        sections.append(f"<section id='{name}'><h2>{name}</h2>{plots}</section>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Chaos runs</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}.held{color:#2ca02c}.violated{color:#d62728}"
            "</style></head><body><h1>Chaos runs</h1><table><tr><th>run</th><th>experiment</th><th>verdict</th>"
            "<th>ready after (s)</th><th>lag 0 after (s)</th><th>acknowledged</th><th>refused</th>"
            f"<th>violations</th></tr>{''.join(rows)}</table>{''.join(sections)}</body></html>")


def write_lag_images(runs: list[RunRecord]) -> list[Path]:
    """Each run's lag plot as `lag.svg` in its folder; the files written."""
    written = []
    for run in runs:
        start = float(run.traffic.get("started") or 0.0)
        image = svg_image(LAG_TITLE, lag_series(run), {k: v - start for k, v in run.marks.items()})
        if image:
            (run.folder / "lag.svg").write_text(image)
            written.append(run.folder / "lag.svg")
    return written
