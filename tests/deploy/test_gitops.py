"""Argo CD Applications, the Argo Rollouts canary, and the Velero schedules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gamemetrics import registry
from tests.deploy.tools import CHART, ROOT, VALUES_FILES, full, named, run, tool

ARGOCD = ROOT / "deploy" / "argocd"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_one_application_per_environment_from_the_chart() -> None:
    (project,) = documents(ARGOCD / "project.yaml")
    for env in ("dev", "staging", "prod"):
        (app,) = documents(ARGOCD / f"{env}.yaml")
        source = app["spec"]["source"]
        assert source["path"] == str(CHART.relative_to(ROOT))
        assert source["helm"]["valueFiles"] == [f"values-{env}.yaml"]
        assert (CHART / f"values-{env}.yaml").name in VALUES_FILES
        assert source["repoURL"] in project["spec"]["sourceRepos"]
        assert app["spec"]["project"] == project["metadata"]["name"]
        destination = {k: app["spec"]["destination"][k] for k in ("server", "namespace")}
        assert destination in project["spec"]["destinations"]
    assert "automated" not in documents(ARGOCD / "prod.yaml")[0]["spec"]["syncPolicy"], "prod syncs by hand"


def test_the_project_allows_every_kind_the_chart_renders(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (project,) = documents(ARGOCD / "project.yaml")
    allowed = {(entry["group"], entry["kind"]) for entry in project["spec"]["namespaceResourceWhitelist"]}
    rendered_kinds = {(obj["apiVersion"].rpartition("/")[0], obj["kind"]) for values in rendered.values()
                      for obj in values}
    assert rendered_kinds - allowed == set()


def test_ingest_is_a_canary_with_prometheus_analysis_in_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["values-prod.yaml"]
    rollouts = named(objects, "Rollout")
    assert set(rollouts) == {full("ingest")}
    rollout = rollouts[full("ingest")]["spec"]
    assert rollout["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": full("ingest"),
                                      "scaleDown": "progressively"}
    assert named(objects, "Deployment")[full("ingest")]["spec"]["replicas"] == 0
    assert named(objects, "HorizontalPodAutoscaler")[full("ingest")]["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    canary = rollout["strategy"]["canary"]
    assert [step for step in canary["steps"] if "setWeight" in step][0]["setWeight"] < 50
    (template_ref,) = canary["analysis"]["templates"]
    analysis = named(objects, "AnalysisTemplate")[template_ref["templateName"]]["spec"]
    assert {metric["name"] for metric in analysis["metrics"]} == {"error-ratio", "latency-p99"}
    for metric in analysis["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        assert query.count('rollouts_pod_template_hash="{{args.canary-hash}}"') >= 1, "reads the canary's pods"
        assert metric["failureLimit"] == 1
    selector = rollout["selector"]["matchLabels"]
    pdb = named(objects, "PodDisruptionBudget")[full("ingest")]["spec"]["selector"]["matchLabels"]
    assert pdb == selector
    assert full("ingest") not in named(rendered["values-dev.yaml"], "Rollout")
    http = {spec.name for spec in registry.SERVICES if spec.serves_http}
    assert {name.removeprefix(full("")) for name in rollouts} <= http


def test_canary_queries_parse(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rules = [{"record": f"canary:{service}_{i}", "expr": metric["query"].replace("{{args.canary-hash}}", "h")}
             for service, spec in values["rollouts"]["services"].items() for i, metric in enumerate(spec["analysis"])]
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "canary", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_velero_backs_up_daily_in_full_and_hourly() -> None:
    schedules = {doc["metadata"]["name"]: doc["spec"] for doc in documents(ROOT / "deploy" / "velero" /
                                                                           "schedules.yaml")}
    cron = re.compile(r"^(\S+ ){4}\S+$")
    daily, hourly = schedules["gamemetrics-daily"], schedules["gamemetrics-hourly"]
    assert cron.match(daily["schedule"]) and daily["schedule"].split()[2:] == ["*", "*", "*"]
    assert cron.match(hourly["schedule"]) and hourly["schedule"].split()[1:] == ["*", "*", "*", "*"]
    assert daily["template"]["snapshotVolumes"] is True
    for spec in (daily, hourly):
        assert spec["template"]["includedNamespaces"] == ["gamemetrics"]
        assert spec["template"]["defaultVolumesToFsBackup"] is True
    assert daily["template"]["ttl"] == "720h0m0s" and hourly["template"]["ttl"] == "48h0m0s"
