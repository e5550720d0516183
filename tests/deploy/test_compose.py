"""deploy/compose.yaml: valid by the Compose specification, and running what the registry declares."""

from __future__ import annotations

import os
from typing import Any

import yaml

from gamemetrics import registry
from tests.deploy.tools import ROOT, run, tool

COMPOSE = ROOT / "deploy" / "compose.yaml"


def resolved(**env: str) -> tuple[int, str, dict[str, Any] | None]:
    """compose-check's exit code, errors and resolved project (as `docker compose config` prints it)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GAMEMETRICS_")} | env
    result = run(tool("compose-check"), str(COMPOSE), env=environ)
    return result.returncode, result.stderr, yaml.safe_load(result.stdout) if result.returncode == 0 else None


def test_the_compose_file_is_valid_and_needs_a_secret_key() -> None:
    code, errors, _ = resolved()
    assert code == 1 and "GAMEMETRICS_SECRET_KEY" in errors
    code, errors, project = resolved(GAMEMETRICS_SECRET_KEY="k" * 32)
    assert code == 0, errors
    assert project is not None
    services = project["services"]
    assert {"kafka", "postgres", "redis", "qdrant", "minio", "prometheus", "grafana"} <= set(services)


def test_the_platform_services_are_the_registry_s() -> None:
    _, errors, project = resolved(GAMEMETRICS_SECRET_KEY="k" * 32)
    assert project is not None, errors
    services = project["services"]
    http = [spec.name for spec in registry.SERVICES if spec.serves_http]
    workers = [spec.name for spec in registry.SERVICES if not spec.serves_http]
    assert services["api"]["command"][:2] == ["serve", ",".join(http)]
    for name in workers:
        assert services["api"]["command"].count(f"{name}=http://{name}:8081") == 1
        assert services[name]["command"] == ["serve", name, "--health-port", "8081"]
        assert services[name]["environment"]["HEALTHCHECK_PORT"] == "8081"
    for name in ["api", "migrate", "kafka-init", *workers]:
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert set(service["tmpfs"]) == {"/tmp", "/var/lib/gamemetrics"}, name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    for name in ["api", *workers]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_prometheus_of_the_stack_scrapes_every_platform_container() -> None:
    result = run(tool("promtool"), "check", "config", "--syntax-only", str(ROOT / "deploy" / "monitoring" /
                                                                          "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    targets = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus-compose.yml").read_text())
    jobs = {group["labels"]["job"]: group["targets"] for group in targets}
    workers = [spec.name for spec in registry.SERVICES if not spec.serves_http]
    assert jobs == {"api": ["api:8000"], **{name: [f"{name}:8081"] for name in workers}}
    assert all(group["labels"]["platform"] == "gamemetrics" for group in targets)
