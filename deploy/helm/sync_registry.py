"""Write what the deployments derive from the service registry: the Helm chart's view of it
(gamemetrics/files/registry.json), the Compose file of the platform's services (deploy/compose.yaml, which
includes the servers of deploy/compose.infra.yaml)
and their Prometheus scrape targets (deploy/monitoring/prometheus-compose.yml).

The chart makes each service's Deployment, Service, probes, Ingress paths, NetworkPolicies and
ServiceAccount from registry.json, so a new entry in `gamemetrics.registry` reaches the chart and
Compose with one run of this script; `--check` exits 1 when a committed file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gamemetrics import registry

DEPLOY = Path(__file__).resolve().parents[1]
CHART_FILE = DEPLOY / "helm" / "gamemetrics" / "files" / "registry.json"
COMPOSE_FILE = DEPLOY / "compose.yaml"
SCRAPE_FILE = DEPLOY / "monitoring" / "prometheus-compose.yml"
HEALTH_PORT = 8081


def chart_registry() -> dict[str, Any]:
    """What the chart needs of each registry entry, in registry order."""
    return {
        "platformPaths": list(registry.PLATFORM_PATHS),
        "services": [
            {
                "name": spec.name,
                "kind": spec.kind,
                "summary": spec.summary,
                "servesHttp": spec.serves_http,
                "paths": list(spec.paths),
                "gdprStores": list(spec.gdpr_stores),
                "scheduled": [{"name": job.name, "args": list(job.args), "schedule": job.schedule,
                               "summary": job.summary,
                               "serviceEnv": [{"name": k, "value": v} for k, v in job.service_env]}
                              for job in spec.scheduled],
            }
            for spec in registry.SERVICES
        ],
    }


def render() -> str:
    """The file's text: stable JSON, so a diff shows what changed in the registry."""
    return json.dumps(chart_registry(), indent=2) + "\n"


# What every platform container shares: the image, the settings for the servers of compose.infra.yaml,
# the same confinement as the chart's pods, and the hook containers it waits for.
_COMPOSE_HEAD = """\
# The scaled stack on one host: the platform's services over Kafka (KRaft), TimescaleDB, Redis, Qdrant,
# MinIO, Prometheus and Grafana. Written by deploy/helm/sync_registry.py from the service registry; the
# servers are in compose.infra.yaml. From the repository's root:
#   GAMEMETRICS_SECRET_KEY=$(openssl rand -hex 32) docker compose -f deploy/compose.yaml up --build
name: gamemetrics
include:
  - compose.infra.yaml

x-gamemetrics-env: &gamemetrics-env
  GAMEMETRICS_DATABASE_URL: postgresql://gamemetrics:gamemetrics@postgres:5432/gamemetrics
  GAMEMETRICS_SECRET_KEY: ${GAMEMETRICS_SECRET_KEY:?set GAMEMETRICS_SECRET_KEY to a long random string}
  GAMEMETRICS_KAFKA_BOOTSTRAP: kafka:9092
  GAMEMETRICS_KAFKA_REPLICATION_FACTOR: "1"
  GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS: "1"
  GAMEMETRICS_REDIS_URL: redis://redis:6379/0
  GAMEMETRICS_QDRANT_URL: http://qdrant:6333
  GAMEMETRICS_ARCHIVE_URL: s3://gamemetrics-archive
  GAMEMETRICS_S3_ENDPOINT_URL: http://minio:9000
  GAMEMETRICS_S3_ACCESS_KEY_ID: gamemetrics
  GAMEMETRICS_S3_SECRET_ACCESS_KEY: gamemetrics-secret
  HEALTHCHECK_PORT: "8000"

x-gamemetrics: &gamemetrics
  image: ${GAMEMETRICS_IMAGE:-gamemetrics:dev}
  build:
    context: ..
    dockerfile: deploy/Dockerfile
  environment: *gamemetrics-env
  read_only: true
  tmpfs: [/tmp, /var/lib/gamemetrics]
  cap_drop: [ALL]
  security_opt: ["no-new-privileges:true"]
  restart: unless-stopped
  depends_on:
    migrate: {condition: service_completed_successfully}
    kafka-init: {condition: service_completed_successfully}

services:
  migrate:
    <<: *gamemetrics
    command: [migrate]
    restart: "no"
    depends_on:
      postgres: {condition: service_healthy}
  kafka-init:
    <<: *gamemetrics
    command: [kafka, init]
    restart: "no"
    depends_on:
      kafka: {condition: service_healthy}
"""


def render_compose() -> str:
    """deploy/compose.yaml: every HTTP service in one `api` process on port 8000 (one base URL, as
    under `gamemetrics up`), each worker service in a container of its own with its health port."""
    http = [spec.name for spec in registry.SERVICES if spec.serves_http]
    workers = [spec.name for spec in registry.SERVICES if not spec.serves_http]
    peers = "".join(f", --peer, {name}=http://{name}:{HEALTH_PORT}" for name in workers)
    lines = [
        "  api:",
        "    <<: *gamemetrics",
        f'    command: [serve, "{",".join(http)}"{peers}]',
        '    ports: ["${GAMEMETRICS_HTTP_PORT:-8000}:8000"]',
    ]
    for name in workers:
        lines += [
            f"  {name}:",
            "    <<: *gamemetrics",
            f'    command: [serve, {name}, --health-port, "{HEALTH_PORT}"]',
            "    environment:",
            "      <<: *gamemetrics-env",
            f'      HEALTHCHECK_PORT: "{HEALTH_PORT}"',
        ]
    return _COMPOSE_HEAD + "\n".join(lines) + "\n"


def render_scrape() -> str:
    """Prometheus's scrape targets of the Compose stack, labelled as the chart's ServiceMonitors label them."""
    targets = [("api", "api:8000")] + [(spec.name, f"{spec.name}:{HEALTH_PORT}")
                                       for spec in registry.SERVICES if not spec.serves_http]
    lines = ["# Written by deploy/helm/sync_registry.py from the service registry; do not edit."]
    for job, target in targets:
        lines += [f"- targets: [{target}]", "  labels:", f"    job: {job}", "    platform: gamemetrics"]
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    """Each derived file and its text."""
    return {CHART_FILE: render(), COMPOSE_FILE: render_compose(), SCRAPE_FILE: render_scrape()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(DEPLOY.parent))
        else:
            path.write_text(text)
    for path in stale:
        print(f"{path} differs from the registry: run `make deploy-sync`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
