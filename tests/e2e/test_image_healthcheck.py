"""The image's HEALTHCHECK command, run as Docker runs it, against a running platform."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from tests.e2e.conftest import RunningPlatform

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def healthcheck_command() -> str:
    """The shell command of the Dockerfile's HEALTHCHECK ... CMD, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    return line.split(" CMD ", 1)[1]


def test_the_healthcheck_passes_on_a_live_port_and_fails_on_a_dead_one(running: RunningPlatform) -> None:
    command = healthcheck_command().replace("python -c", f"{sys.executable} -c", 1)
    assert command.startswith(sys.executable)
    port = str(urlparse(running.base_url).port)
    alive = subprocess.run(["sh", "-c", command], env={"HEALTHCHECK_PORT": port}, capture_output=True, timeout=10)
    assert alive.returncode == 0, alive.stderr
    dead = subprocess.run(["sh", "-c", command], env={"HEALTHCHECK_PORT": "1"}, capture_output=True, timeout=10)
    assert dead.returncode != 0
