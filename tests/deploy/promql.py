"""The metric names a PromQL expression reads, and the expressions of the alert rules and dashboards."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import CHART, ROOT

ALERTS = sorted((CHART / "files" / "alerts").glob("*.yaml"))
DASHBOARDS = sorted((CHART / "files" / "dashboards").glob("*.json"))
EXPORTER_METRICS = ROOT / "deploy" / "monitoring" / "exporter-metrics.txt"
OWN_PREFIX = "gamemetrics_"
# Dashboard variables, replaced by a value so that the panels' expressions parse.
VARIABLES = {"$service": "ingest"}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
             "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names of one expression: identifiers that are neither functions, keywords, label
    names (in braces or grouping clauses) nor inside strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        word = match.group(0)
        if following == "(" or word.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent or unit of a number, such as 1e3
        names.add(word)
    return names


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the chart's rule files."""
    return [rule for path in ALERTS for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def panel_exprs() -> list[tuple[str, str]]:
    """(dashboard file, expression) of every panel target, variables replaced."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((path.name, expr))
    return found


def canary_exprs() -> list[str]:
    """The queries of the chart's canary analysis (values.yaml), their argument filled in."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return [metric["query"].replace("{{args.canary-hash}}", "h")
            for spec in values["rollouts"]["services"].values() for metric in spec["analysis"]]


def used_names() -> set[str]:
    """Every metric name a rule, a panel or the canary analysis reads."""
    exprs = [rule["expr"] for rule in alert_rules()] + [expr for _, expr in panel_exprs()] + canary_exprs()
    return {name for expr in exprs for name in metric_names(expr)}


def exporter_names(path: Path = EXPORTER_METRICS) -> dict[str, str]:
    """The exporters' metric names of the repository's list, each with its exporter."""
    names: dict[str, str] = {}
    exporter = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            exporter = line.strip("[]")
        else:
            names[line] = exporter
    return names
