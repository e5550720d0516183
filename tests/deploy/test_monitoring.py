"""Alert rules, their unit tests, Alertmanager's routing, the dashboards and the runbooks they point at."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import (
    ALERTS,
    DASHBOARDS,
    OWN_PREFIX,
    alert_rules,
    exporter_names,
    metric_names,
    panel_exprs,
    used_names,
)
from tests.deploy.tools import ROOT, full, named, run, tool

MONITORING = ROOT / "deploy" / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks"
SEVERITIES = {"critical", "warning", "info"}


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings, as GitHub makes them."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


def test_promtool_checks_the_rules() -> None:
    result = run(tool("promtool"), "check", "rules", *map(str, ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = run(tool("promtool"), "test", "rules", *map(str, sorted((MONITORING / "tests").glob("*.test.yaml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_the_alertmanager_config_and_every_severity_has_a_route() -> None:
    config = MONITORING / "alertmanager.yaml"
    result = run(tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    routes = yaml.safe_load(config.read_text())["route"]["routes"]
    routed = {m.split("=")[1].strip('"') for route in routes for m in route["matchers"] if m.startswith("severity=")}
    assert routed == SEVERITIES


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    rules = alert_rules()
    assert len(rules) >= 40
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page.startswith("docs/runbooks/"), rule["alert"]
        assert (ROOT / page).exists(), page
        assert anchor == rule["alert"].lower() and anchor in anchors(ROOT / page), rule["runbook_url"]


def test_every_runbook_section_is_an_alert() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    sections = {line[3:].strip() for page in RUNBOOKS.glob("*.md") if page.name != "incident-response.md"
                for line in page.read_text().splitlines() if line.startswith("## ")}
    assert sections == alerts
    for page in RUNBOOKS.glob("*.md"):
        if page.name == "incident-response.md":
            continue
        for section in page.read_text().split("\n## ")[1:]:
            for part in ("**What it means.**", "**How to confirm.**", "**What to do.**"):
                assert part in section, f"{page.name}: {section.splitlines()[0]} lacks {part}"


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Each panel's expression, as a recording rule that promtool parses."""
    rules = [{"record": f"dashboard:panel_{i}", "expr": expr} for i, (_, expr) in enumerate(panel_exprs())]
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert {p.stem for p in DASHBOARDS} >= {"overview", "ingest", "processor", "services"}


def test_names_not_ours_are_in_the_exporters_list() -> None:
    listed = exporter_names()
    foreign = {name for name in used_names() if not name.startswith(OWN_PREFIX)}
    assert foreign - set(listed) == set()
    assert set(listed) - foreign == set(), "drop names no rule or panel uses"


def test_metric_names_of_an_expression() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", le!="1"}[5m]))) > 1e3 and on (pod)'
            ' increase(b_total[15m:1m]) > 0 unless c offset 1d')
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_the_chart_provisions_rules_dashboards_and_service_monitors(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from gamemetrics import registry

    objects = rendered["values-prod.yaml"]
    monitors = named(objects, "ServiceMonitor")
    assert set(monitors) == {full(spec.name) for spec in registry.SERVICES}
    for spec in registry.SERVICES:
        (endpoint,) = monitors[full(spec.name)]["spec"]["endpoints"]
        assert endpoint["port"] == ("http" if spec.serves_http else "health")
        assert endpoint["path"] == "/metrics"
        assert {"targetLabel": "platform", "replacement": "gamemetrics"} in endpoint["relabelings"]
    chart_rules = [rule for obj in named(objects, "PrometheusRule").values() for group in obj["spec"]["groups"]
                   for rule in group["rules"]]
    assert [rule["alert"] for rule in chart_rules] == [rule["alert"] for rule in alert_rules()]
    assert all(rule["annotations"]["runbook_url"].startswith("https://docs.gamemetrics.example.com/docs/runbooks/")
               for rule in chart_rules)
    dashboards = {name for obj in named(objects, "ConfigMap").values()
                  if "grafana_dashboard" in obj["metadata"]["labels"] for name in obj["data"]}
    assert dashboards == {p.name for p in DASHBOARDS}
    assert not named(rendered["values-dev.yaml"], "ServiceMonitor"), "off unless the Prometheus Operator is there"
