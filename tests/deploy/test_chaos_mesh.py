"""The Chaos Mesh manifests of deploy/chaos-mesh: one per local experiment, each valid against the
schema of the Chaos Mesh API it uses (deploy/chaos-mesh/schema.json), aimed at the chart's
components; and the schema refuses what Chaos Mesh would refuse."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gamemetrics import registry
from gamemetrics.chaos.runner import experiments

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "chaos-mesh"
SCHEMA = json.loads((FOLDER / "schema.json").read_text())
MANIFESTS = sorted(FOLDER.glob("*.yaml"))
# The local experiment 7 has two forms (a frozen member, a partitioned one); Kubernetes has the partition.
LOCAL_ONLY = {"processor-frozen"}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def problems(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document))


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_each_manifest_is_valid_and_aims_at_the_charts_components(path: Path) -> None:
    document = load(path)
    assert problems(document) == []
    components = {spec.name for spec in registry.SERVICES}
    for selector in (document["spec"]["selector"], document["spec"].get("target", {}).get("selector", {})):
        component = selector.get("labelSelectors", {}).get("app.kubernetes.io/component")
        assert component is None or component in components, f"{path.name}: no component {component!r}"


def test_every_local_experiment_has_its_manifest() -> None:
    named = {load(path)["metadata"]["annotations"]["gamemetrics.io/experiment"] for path in MANIFESTS}
    assert named == set(experiments()) - LOCAL_ONLY
    assert len(MANIFESTS) == 8
    kinds = {load(path)["kind"] for path in MANIFESTS}
    assert kinds == {"PodChaos", "NetworkChaos", "StressChaos", "DNSChaos"}


def broken(name: str, change: Any) -> dict[str, Any]:
    document = copy.deepcopy(load(FOLDER / name))
    change(document)
    return document


@pytest.mark.parametrize(("name", "change", "expected"), [
    ("01-kafka-broker-killed.yaml", lambda d: d["spec"].update(action="pod-kil"), "spec/action: 'pod-kil' is not one"),
    ("02-bus-latency.yaml", lambda d: d["spec"]["delay"].update(latency="300"), "spec/delay/latency: '300' does not"),
    ("02-bus-latency.yaml", lambda d: d["spec"].pop("delay"), "spec: 'delay' is a required property"),
    ("04-cpu-stress.yaml", lambda d: d["spec"]["stressors"]["cpu"].pop("workers"), "'workers' is a required"),
    ("05-zone-lost.yaml", lambda d: d["spec"].update(mode="fixed-percent"), "spec: 'value' is a required property"),
    ("06-recommender-memory.yaml", lambda d: d["spec"].update(memory={"size": "1GB"}), "spec: Additional properties"),
    ("07-processor-partitioned.yaml", lambda d: d["spec"].update(direction="sideways"), "spec/direction: 'sideways'"),
    ("08-bootstrap-unresolvable.yaml", lambda d: d["spec"].update(patterns=["*.kafka.svc"]), "spec/patterns/0"),
    ("03-postgres-killed.yaml", lambda d: d["spec"].pop("selector"), "spec: 'selector' is a required property"),
    ("03-postgres-killed.yaml", lambda d: d.update(apiVersion="chaos-mesh.org/v1"),
     "apiVersion: 'chaos-mesh.org/v1alpha1' was expected"),
    # What the comparison with the v2.8.3 CRDs and admission webhook found the schema let through:
    # the webhook wants a percentage in (0, 100] for the percent modes, and more than 0 pods for fixed;
    ("05-zone-lost.yaml", lambda d: d["spec"].update(mode="fixed-percent", value="150"), "spec/value: '150' does not"),
    ("05-zone-lost.yaml", lambda d: d["spec"].update(mode="fixed", value="0"), "spec/value: '0' does not match"),
    # container-kill names its containers;
    ("01-kafka-broker-killed.yaml", lambda d: d["spec"].update(action="container-kill"),
     "spec: 'containerNames' is a required property"),
    # the CRD's pattern of delay.latency and delay.jitter is one number and one unit;
    ("02-bus-latency.yaml", lambda d: d["spec"]["delay"].update(latency="1m30s"), "spec/delay/latency: '1m30s' does"),
    # delay.reorder has its reorder and gap;
    ("02-bus-latency.yaml", lambda d: d["spec"]["delay"].update(reorder={"reorder": "10"}),
     "spec/delay/reorder: 'gap' is a required property"),
    # a netem action's from or both needs a target, and takes no external targets;
    ("02-bus-latency.yaml", lambda d: (d["spec"].update(direction="from"), d["spec"].pop("target")),
     "spec: 'target' is a required property"),
    ("02-bus-latency.yaml", lambda d: d["spec"].update(direction="both", externalTargets=["kafka.example.com"]),
     "False schema does not allow ['kafka.example.com']"),
    # stress-ng runs at most 8192 workers;
    ("04-cpu-stress.yaml", lambda d: d["spec"]["stressors"]["cpu"].update(workers=10000),
     "spec/stressors/cpu/workers: 10000 is greater than the maximum of 8192"),
    # a memory size in percent is at most 100;
    ("06-recommender-memory.yaml", lambda d: d["spec"]["stressors"]["memory"].update(size="150%"),
     "spec/stressors/memory/size: '150%' does not match"),
    # an empty stressngStressors is no stressor.
    ("06-recommender-memory.yaml", lambda d: (d["spec"].pop("stressors"), d["spec"].update(stressngStressors="")),
     "is not valid under any of the given schemas"),
])
def test_the_schema_refuses_what_chaos_mesh_would(name: str, change: Any, expected: str) -> None:
    found = problems(broken(name, change))
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(("name", "change"), [
    ("05-zone-lost.yaml", lambda d: d["spec"].update(mode="random-max-percent", value="100")),
    ("05-zone-lost.yaml", lambda d: d["spec"].update(mode="fixed", value="3")),
    ("01-kafka-broker-killed.yaml", lambda d: d["spec"].update(action="container-kill", containerNames=["kafka"])),
    ("02-bus-latency.yaml",
     lambda d: d["spec"]["delay"].update(reorder={"reorder": "10", "gap": 5, "correlation": "50"})),
    ("02-bus-latency.yaml", lambda d: d["spec"].update(direction="both")),
    ("07-processor-partitioned.yaml",
     lambda d: (d["spec"].pop("target"), d["spec"].update(externalTargets=["kafka.example.com"]))),
    ("04-cpu-stress.yaml", lambda d: d["spec"]["stressors"]["cpu"].update(workers=8192)),
    ("06-recommender-memory.yaml", lambda d: d["spec"]["stressors"]["memory"].update(size="100%")),
    ("06-recommender-memory.yaml",
     lambda d: (d["spec"].pop("stressors"), d["spec"].update(stressngStressors="--vm 1"))),
])
def test_the_schema_accepts_what_chaos_mesh_accepts_beside_those_limits(name: str, change: Any) -> None:
    assert problems(broken(name, change)) == []
