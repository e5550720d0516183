"""The container image: how the Dockerfile builds it, checked without a Docker daemon (checkov scans it
with the chart, in test_chart.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.deploy.tools import ROOT, run

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SYNC = "uv sync --frozen --no-dev --no-editable"


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), per stage, with the build
    arguments declared before the first stage replaced by their defaults."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    defaults: dict[str, str] = {}
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not result and line.upper().startswith("ARG "):
            name, _, default = line[4:].partition("=")
            defaults[name.strip()] = default.strip()
        line = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), line)
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_the_final_stage_runs_gamemetrics_unprivileged_without_build_tools() -> None:
    build, final = stages()
    assert any(SYNC in line for line in build), "locked dependencies, no dev group, the package itself installed"
    assert any("uv==" in line for line in build)
    assert final[0].startswith("FROM python:") and " AS runtime" in final[0]
    runs = " ".join(line for line in final if line.startswith("RUN "))
    for tool_name in ("pip install", "uv ", "apt-get install", "gcc", "build-essential"):
        assert tool_name not in runs, tool_name
    copies = [line for line in final if line.startswith("COPY ")]
    assert copies and all(line.startswith("COPY --from=build ") for line in copies)
    (user,) = [line for line in final if line.startswith("USER ")]
    uid = int(user.split()[1].split(":")[0])
    assert uid >= 10000
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in final)
    (entrypoint,) = [line for line in final if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["gamemetrics"]


def test_the_build_context_is_only_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:4] == ["!pyproject.toml", "!uv.lock", "!README.md", "!src/"]
    copied = {part for stage in stages() for line in stage if line.startswith("COPY ") and "--from" not in line
              for part in line.split()[1:-1]}
    assert copied == {"pyproject.toml", "uv.lock", "README.md", "src"}


def test_the_image_install_runs_every_command_the_chart_uses(tmp_path: Path) -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "env"), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    result = run(str(ROOT / ".tools" / "bin" / "uv"), *SYNC.split()[1:], "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    gamemetrics = str(tmp_path / "env" / "bin" / "gamemetrics")
    for command in (["serve", "--help"], ["migrate", "--help"], ["kafka", "init", "--help"], ["up", "--help"]):
        assert run(gamemetrics, *command).returncode == 0, command
    python = str(tmp_path / "env" / "bin" / "python")
    assert run(python, "-c", "import pytest").returncode != 0, "no dev dependencies in the image"
    versions = run(python, "-c", "import gamemetrics.migrations as m, pathlib;"
                                 " print(len(list((pathlib.Path(m.__file__).parent / 'versions').glob('0*.py'))))")
    assert int(versions.stdout) > 0, "the migrations ship inside the package"
