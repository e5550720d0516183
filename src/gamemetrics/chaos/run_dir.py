"""Where one run keeps what its activities share: the platform it started and the traffic it sent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_DIR_VARIABLE = "GAMEMETRICS_CHAOS_RUN_DIR"
SEED_VARIABLE = "GAMEMETRICS_CHAOS_SEED"


def run_dir(configuration: dict[str, Any] | None) -> Path:
    """The run's folder, from the experiment's configuration or the environment."""
    value = (configuration or {}).get("run_dir") or os.environ.get(RUN_DIR_VARIABLE)
    if not value:
        raise RuntimeError(f"no run folder: set {RUN_DIR_VARIABLE} or the configuration's run_dir")
    path = Path(str(value))
    path.mkdir(parents=True, exist_ok=True)
    return path


def read(configuration: dict[str, Any] | None, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir(configuration) / f"{name}.json").read_text())
    return data


def write(configuration: dict[str, Any] | None, name: str, data: dict[str, Any]) -> None:
    target = run_dir(configuration) / f"{name}.json"
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(target)
