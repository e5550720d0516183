"""Write the Helm chart's view of the service registry (gamemetrics/files/registry.json).

The chart makes each service's Deployment, Service, probes, Ingress paths, NetworkPolicies and
ServiceAccount from this file, so a new entry in `gamemetrics.registry` reaches the chart with one
run of this script; `--check` exits 1 when the committed file differs from the registry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gamemetrics import registry

CHART_FILE = Path(__file__).resolve().parent / "gamemetrics" / "files" / "registry.json"


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
            }
            for spec in registry.SERVICES
        ],
    }


def render() -> str:
    """The file's text: stable JSON, so a diff shows what changed in the registry."""
    return json.dumps(chart_registry(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = CHART_FILE.read_text() if CHART_FILE.exists() else ""
        if current != text:
            print(f"{CHART_FILE.name} differs from the registry: run python deploy/helm/sync_registry.py",
                  file=sys.stderr)
            return 1
        return 0
    CHART_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
