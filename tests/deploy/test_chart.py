"""The Helm chart: linted, rendered for every environment, valid for Kubernetes, and true to the registry."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from gamemetrics import registry
from gamemetrics.settings import Settings
from tests.deploy.tools import CHART, KUBE_VERSION, ROOT, VALUES_FILES, full, named, render, run, tool

ALL_VALUES = ("values.yaml", *VALUES_FILES)
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion).
MIN_KUBE_VERSION = "1.27.0"
SPECS = registry.SERVICES
# Custom resources the chart may render; the Kubernetes schemas do not know them.
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule", "Rollout", "AnalysisTemplate", "ExternalSecret",
                "TriggerAuthentication"}


def setting_names(model: type[BaseSettings] = Settings) -> set[str]:
    """Every environment variable the settings object reads: each model's own prefix and field names
    (or aliases), its sub-settings' included."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= setting_names(annotation)
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def port_of(spec: registry.ServiceSpec) -> int:
    return 8000 if spec.serves_http else 8081


def test_the_chart_file_matches_the_registry() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "deploy" / "helm" / "sync_registry.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("values", ALL_VALUES)
def test_lint_strict(values: str) -> None:
    result = run(tool("helm"), "lint", "--strict", str(CHART), "-f", str(CHART / values), "--kube-version",
                 KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", [MIN_KUBE_VERSION, KUBE_VERSION])
@pytest.mark.parametrize("values", ALL_VALUES)
def test_manifests_are_valid_kubernetes_objects(rendered: dict[str, list[dict[str, Any]]], values: str,
                                                kube_version: str) -> None:
    assert f'kubeVersion: ">={MIN_KUBE_VERSION}-0"' in (CHART / "Chart.yaml").read_text()
    unknown = set()
    for obj in rendered[values]:
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(obj["kind"])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{values}: {obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert unknown <= CUSTOM_KINDS


def test_checkov_passes_the_chart_and_the_dockerfile_and_every_skip_is_needed(tmp_path: Path) -> None:
    """One checkov run (it costs seconds to start) over the rendered chart and the Dockerfile."""
    files = []
    for values in ALL_VALUES:
        path = tmp_path / f"rendered-{values}"
        path.write_text(yaml.safe_dump_all(render(values=None if values == "values.yaml" else values)))
        files.append(path)
    unskipped = tmp_path / "unskipped.yaml"
    unskipped.write_text(yaml.safe_dump_all(render(CHART, "values.yaml", "--set", "checkovSkips=null")))
    args = [tool("checkov"), "--framework", "kubernetes", "dockerfile", "--skip-download", "--quiet", "--compact",
            "-o", "json"]
    for path in [*files, unskipped, ROOT / "deploy" / "Dockerfile"]:
        args += ["-f", str(path)]
    result = run(*args)
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    assert all(r["summary"]["passed"] > 0 for r in reports)
    failed = [check for r in reports for check in r.get("results", {}).get("failed_checks", [])]
    in_chart = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in failed
                if not c["file_path"].endswith("unskipped.yaml")]
    assert in_chart == []
    skips = {skip["id"]: skip["reason"] for skip in render_values()["checkovSkips"]}
    assert all(len(reason) > 20 for reason in skips.values()), "every skipped check says why"
    failing_unskipped = {c["check_id"] for c in failed if c["file_path"].endswith("unskipped.yaml")}
    assert failing_unskipped == set(skips), "skip exactly the checks that fail"


def render_values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


@pytest.mark.parametrize("values", ALL_VALUES)
@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_service_has_its_objects(rendered: dict[str, list[dict[str, Any]]], values: str,
                                       spec: registry.ServiceSpec) -> None:
    objects = rendered[values]
    name = full(spec.name)
    deployment = named(objects, "Deployment")[name]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    expected_args = ["serve", spec.name] + ([] if spec.serves_http else ["--health-port", "8081"])
    assert container["args"] == expected_args
    port = port_of(spec)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][section]), section

    pdb = named(objects, "PodDisruptionBudget")[name]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    policy = named(objects, "NetworkPolicy")[name]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}

    account = named(objects, "ServiceAccount")[name]
    assert pod["spec"]["serviceAccountName"] == name
    assert account["automountServiceAccountToken"] is False
    assert pod["spec"]["automountServiceAccountToken"] is False

    service = named(objects, "Service")[name]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["port"] for p in service["spec"]["ports"]] == [port]


@pytest.mark.parametrize("values", ALL_VALUES)
def test_pods_run_unprivileged_on_a_read_only_root(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    pods = [obj["spec"]["template"]["spec"] for obj in rendered[values] if obj["kind"] in ("Deployment", "Job")]
    pods += [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] for obj in rendered[values]
             if obj["kind"] == "CronJob"]
    assert len(pods) > len(SPECS) + 1
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] >= 10000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["runAsNonRoot"] is True
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/gamemetrics"} <= mounts


@pytest.mark.parametrize("values", ALL_VALUES)
def test_the_ingress_routes_exactly_the_registry_paths(rendered: dict[str, list[dict[str, Any]]],
                                                       values: str) -> None:
    (ingress,) = named(rendered[values], "Ingress").values()
    routes = [
        (path["path"], path["pathType"], path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]
    ]
    expected = [(*ingress_path(prefix), full(spec.name), "http") for spec in SPECS for prefix in spec.paths]
    assert sorted(routes) == sorted(expected)
    templated = any("{" in prefix for spec in SPECS for prefix in spec.paths)
    assert (ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/use-regex") == "true") \
        == templated
    assert len(routes) == len(set(routes))


def ingress_path(prefix: str) -> tuple[str, str]:
    """How the Ingress routes a registry prefix: as a prefix, or (with `{name}` segments) as an expression."""
    if "{" not in prefix:
        return prefix, "Prefix"
    return re.sub(r"\{[^}/]+\}", "[^/]+", prefix), "ImplementationSpecific"


def test_a_templated_prefix_becomes_one_segment_of_an_expression() -> None:
    assert ingress_path("/v1/games/{game_id}/items") == ("/v1/games/[^/]+/items", "ImplementationSpecific")
    assert ingress_path("/v1/games") == ("/v1/games", "Prefix")


@pytest.mark.parametrize("values", ALL_VALUES)
def test_no_rbac_and_settings_only_of_the_settings_object(rendered: dict[str, list[dict[str, Any]]],
                                                          values: str) -> None:
    objects = rendered[values]
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {obj["kind"] for obj in objects}
    known = setting_names()
    config = named(objects, "ConfigMap")[full("settings")]
    assert set(config["data"]) - known == set()
    for secret in named(objects, "Secret").values():
        assert set(secret.get("stringData", {})) - known == set()
    assert config["data"]["GAMEMETRICS_HOST"] == "0.0.0.0"
    assert {"GAMEMETRICS_DATABASE_URL", "GAMEMETRICS_REDIS_URL", "GAMEMETRICS_S3_SECRET_ACCESS_KEY"} <= known


def test_kafka_values_reach_the_settings_and_the_topic_job(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["values-prod.yaml"]
    config = named(objects, "ConfigMap")[full("settings")]
    data = config["data"]
    assert data["GAMEMETRICS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["GAMEMETRICS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["GAMEMETRICS_KAFKA_SSL_CA_LOCATION"] == "/etc/gamemetrics/kafka-ca/ca.crt"
    assert data["GAMEMETRICS_KAFKA_SSL_CERTIFICATE_LOCATION"] == "/etc/gamemetrics/kafka-client/tls.crt"
    jobs = named(objects, "Job")
    weights = {name: int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) for name, job in jobs.items()}
    assert weights[full("migrate")] < weights[full("kafka-init")]
    assert jobs[full("kafka-init")]["spec"]["template"]["spec"]["containers"][0]["args"] == ["kafka", "init"]
    # What the Jobs read exists before them: hooks of a lower weight.
    for kind, name in (("ConfigMap", full("settings")), ("ServiceAccount", full("jobs"))):
        obj = named(objects, kind)[name]
        assert int(obj["metadata"]["annotations"]["helm.sh/hook-weight"]) < min(weights.values())
    assert full("kafka-init") not in named(rendered["values-dev.yaml"], "Job"), "no Kafka, no topic job"


def test_the_processor_scales_on_lag_in_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["values-prod.yaml"]
    scaled = named(objects, "ScaledObject")[full("processor")]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == "player.events.raw"
    assert trigger["metadata"]["consumerGroup"] == "processor"
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    auth = named(objects, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]["spec"]
    assert {e["parameter"]: e["name"] for e in auth["env"]} == {
        "username": "GAMEMETRICS_KAFKA_SASL_USERNAME", "password": "GAMEMETRICS_KAFKA_SASL_PASSWORD"}
    assert {ref["parameter"] for ref in auth["secretTargetRef"]} == {"ca", "cert", "key"}
    assert full("processor") not in named(objects, "HorizontalPodAutoscaler")
    assert "replicas" not in named(objects, "Deployment")[full("processor")]["spec"]
    hpas = named(objects, "HorizontalPodAutoscaler")
    assert {full(spec.name) for spec in SPECS if spec.serves_http} <= set(hpas)


def test_network_policies_deny_by_default_and_allow_each_flow(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policies = named(rendered["values-staging.yaml"], "NetworkPolicy")
    deny = policies[full("default-deny")]["spec"]
    assert deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "gamemetrics",
                                                  "app.kubernetes.io/instance": "gm"}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for spec in SPECS:
        own = policies[full(spec.name)]["spec"]
        from_ingress_controller = [rule for rule in own["ingress"] if rule["from"][0]["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}]
        assert bool(from_ingress_controller) == spec.serves_http, spec.name
        egress_ports = {port["port"] for rule in own["egress"] for port in rule["ports"]}
        # PostgreSQL, Kafka (TLS), Redis, Qdrant and S3 in staging; nothing else.
        assert egress_ports == {5432, 9093, 6379, 6333, 443}, spec.name
    job_ports = {port["port"] for rule in policies[full("jobs")]["spec"]["egress"] for port in rule["ports"]}
    assert job_ports == {5432, 9093}


SCHEDULED = [(spec, job) for spec in SPECS for job in spec.scheduled]


def test_the_retention_run_is_scheduled() -> None:
    assert [(spec.name, job.args) for spec, job in SCHEDULED] == [("retention", ("retention", "run"))]


@pytest.mark.parametrize("values", ALL_VALUES)
def test_each_scheduled_command_is_a_confined_cronjob_of_its_own(rendered: dict[str, list[dict[str, Any]]],
                                                                  values: str) -> None:
    objects = rendered[values]
    cronjobs = named(objects, "CronJob")
    assert set(cronjobs) == {full(f"{spec.name}-{job.name}") for spec, job in SCHEDULED}
    selectors = [service["spec"]["selector"] for service in named(objects, "Service").values()]
    for spec, job in SCHEDULED:
        name = full(f"{spec.name}-{job.name}")
        cron = cronjobs[name]["spec"]
        assert cron["schedule"] == job.schedule and cron["concurrencyPolicy"] == "Forbid"
        template = cron["jobTemplate"]["spec"]["template"]
        pod, labels = template["spec"], template["metadata"]["labels"]
        (container,) = pod["containers"]
        assert container["args"] == list(job.args)
        assert pod["restartPolicy"] == "Never"
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][section]), section
        # The same confinement as the service's own pods.
        service_pod = named(objects, "Deployment")[full(spec.name)]["spec"]["template"]["spec"]
        assert pod["securityContext"] == service_pod["securityContext"]
        assert container["securityContext"] == service_pod["containers"][0]["securityContext"]
        assert container["envFrom"] == service_pod["containers"][0]["envFrom"]
        account = named(objects, "ServiceAccount")[name]
        assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is False
        assert account["automountServiceAccountToken"] is False
        # No Service sends it traffic, and its policy lets nothing in and only the stores out.
        assert not any(selector.items() <= labels.items() for selector in selectors)
        if values != "values.yaml" or named(objects, "NetworkPolicy"):
            policy = named(objects, "NetworkPolicy")[name]["spec"]
            assert policy["podSelector"]["matchLabels"].items() <= labels.items()
            assert policy["ingress"] == [] and set(policy["policyTypes"]) == {"Ingress", "Egress"}
            service_policy = named(objects, "NetworkPolicy")[full(spec.name)]["spec"]
            assert policy["egress"] == service_policy["egress"]


def test_a_schedule_can_be_changed_or_a_scheduled_command_turned_off() -> None:
    moved = render(CHART, None, "--set", "scheduledJobs.schedules.retention-run=0 4 * * 0")
    assert named(moved, "CronJob")[full("retention-run")]["spec"]["schedule"] == "0 4 * * 0"
    off = render(CHART, None, "--set", "scheduledJobs.disabled={retention-run}")
    assert named(off, "CronJob") == {}
    assert full("retention-run") not in named(off, "ServiceAccount")
    # With the CronJob gone, the service's pods run the daily archive themselves again.
    assert "GAMEMETRICS_RETENTION_RUN_AT" not in _env(named(off, "Deployment")[full("retention")])


@pytest.mark.parametrize("values", ALL_VALUES)
def test_a_scheduled_command_is_not_also_run_by_its_service(rendered: dict[str, list[dict[str, Any]]],
                                                            values: str) -> None:
    deployments = named(rendered[values], "Deployment")
    for spec, job in SCHEDULED:
        assert job.service_env, f"{spec.name}-{job.name} names no setting that turns the service's own run off"
        env = _env(deployments[full(spec.name)])
        assert all(env.get(name) == value for name, value in job.service_env), env
    for spec in SPECS:
        if not spec.scheduled:
            assert "GAMEMETRICS_RETENTION_RUN_AT" not in _env(deployments[full(spec.name)]), spec.name


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_a_collector_endpoint_turns_tracing_on_and_opens_the_way_to_it() -> None:
    objects = render(CHART, "values-staging.yaml", "--set", "tracing.otlpEndpoint=http://otel.monitoring:4318")
    settings = named(objects, "ConfigMap")[full("settings")]["data"]
    assert settings["GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.monitoring:4318"
    policies = named(objects, "NetworkPolicy")
    for name in [spec.name for spec in SPECS] + [f"{spec.name}-{job.name}" for spec, job in SCHEDULED]:
        assert 4318 in {port["port"] for rule in policies[full(name)]["spec"]["egress"] for port in rule["ports"]}
    untraced = named(render(CHART, "values-staging.yaml"), "ConfigMap")[full("settings")]["data"]
    assert "GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT" not in untraced


def test_a_new_registry_entry_reaches_the_chart(tmp_path: Path) -> None:
    chart = tmp_path / "gamemetrics"
    shutil.copytree(CHART, chart)
    entries = json.loads((chart / "files" / "registry.json").read_text())
    entries["services"] += [
        {"name": "board", "kind": "http", "summary": "s", "servesHttp": True, "paths": ["/board"], "gdprStores": []},
        {"name": "sweeper", "kind": "worker", "summary": "s", "servesHttp": False, "paths": [], "gdprStores": []},
    ]
    (chart / "files" / "registry.json").write_text(json.dumps(entries))
    objects = render(chart)
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"):
        assert {full("board"), full("sweeper")} <= set(named(objects, kind)), kind
    (ingress,) = named(objects, "Ingress").values()
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths["/board"] == full("board")
    sweeper = named(objects, "Deployment")[full("sweeper")]["spec"]["template"]["spec"]["containers"][0]
    assert sweeper["args"] == ["serve", "sweeper", "--health-port", "8081"]


def test_prod_credentials_come_from_the_secret_store(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["values-prod.yaml"]
    (external,) = named(objects, "ExternalSecret").values()
    spec = external["spec"]
    assert spec["target"] == {"name": "gamemetrics-prod", "creationPolicy": "Orphan", "deletionPolicy": "Retain"}
    keys = {item["secretKey"] for item in spec["data"]}
    assert {"GAMEMETRICS_DATABASE_URL", "GAMEMETRICS_SECRET_KEY"} <= keys and keys <= setting_names()
    assert int(external["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    assert not named(objects, "Secret"), "the store writes the Secret; the chart makes none"
    refs = {ref["secretRef"]["name"] for obj in named(objects, "Deployment").values()
            for ref in obj["spec"]["template"]["spec"]["containers"][0]["envFrom"] if "secretRef" in ref}
    assert refs == {"gamemetrics-prod"}


def settings_by_name(settings: BaseSettings) -> dict[str, Any]:
    """A settings object's values by the environment variable each is read from."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    values: dict[str, Any] = {}
    for field_name, field in type(settings).model_fields.items():
        value = getattr(settings, field_name)
        if isinstance(value, BaseSettings):
            values |= settings_by_name(value)
        else:
            alias = field.validation_alias
            values[alias.upper() if isinstance(alias, str) else f"{prefix}{field_name}".upper()] = value
    return values


@pytest.mark.parametrize("values", ALL_VALUES)
def test_the_settings_object_accepts_what_the_chart_sets(rendered: dict[str, list[dict[str, Any]]], values: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap (and a values-made Secret) as a pod's environment: Settings reads each value as set."""
    objects = rendered[values]
    environment = dict(named(objects, "ConfigMap")[full("settings")]["data"])
    for secret in named(objects, "Secret").values():
        environment.update(secret.get("stringData") or {})
    for name in list(os.environ):
        if name.startswith("GAMEMETRICS_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    read = settings_by_name(Settings())
    for name, value in environment.items():
        parsed = read[name]
        text = parsed.get_secret_value() if isinstance(parsed, SecretStr) else str(parsed)
        assert text == value, name
