"""The deployment checkers `make test-deps` installs, and the chart rendered with them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "gamemetrics"
VALUES_FILES = ("values-dev.yaml", "values-staging.yaml", "values-prod.yaml")
KUBE_VERSION = "1.31.0"
NAMESPACE = "gamemetrics"
RELEASE = "gm"


def tool(name: str) -> str:
    """The path of a checker: the project's build under .tools first, then the system's; fails when absent."""
    for candidate in (ROOT / ".tools" / "go" / "bin" / name, ROOT / ".tools" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `make test-deps` installs it", pytrace=False)
    return found


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a checker; the result, whatever its exit code."""
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def render(chart: Path = CHART, values: str | None = None, *extra: str) -> list[dict[str, Any]]:
    """`helm template` of the chart (with a values file of its own), as a list of objects."""
    args = [tool("helm"), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(chart / values)]
    result = run(*args, *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def named(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by name."""
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def full(name: str) -> str:
    """An object's name for a component of the test release."""
    return f"{RELEASE}-gamemetrics-{name}"
