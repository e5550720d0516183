"""Memory pressure on one process of the platform: the process and `stress-ng --vm` in a memory cgroup
of the run (cgroup v1) whose limit is smaller than what the stress wants, so what the process
allocates from then on competes with the stress inside the limit, and the pressure never reaches
the rest of the machine. (A page is charged to the cgroup where it is first touched, and current
kernels no longer move what a process held before: the limit bounds what is taken from the fault on.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from gamemetrics.chaos import run_dir

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
_stress: dict[Path, subprocess.Popen[bytes]] = {}


def _cgroup(configuration: dict[str, Any] | None) -> Path:
    return MEMORY_ROOT / f"gamemetrics-chaos-{run_dir.run_dir(configuration).name}"


def _http_pid(state: dict[str, Any]) -> int:
    from gamemetrics.supervision import supervised_processes

    processes = supervised_processes(Path(state["data_dir"])) or []
    for process in processes:
        if "recommender" in process["name"].split(","):
            return int(process["pid"])
    raise RuntimeError("no process of the platform serves the recommender")


def squeeze_memory(configuration: dict[str, Any] | None = None, limit_mb: int = 128, vm_mb: int = 256,
                   seconds: float = 120.0) -> dict[str, Any]:
    """Put the recommender's process in a memory cgroup of `limit_mb` with `stress-ng --vm` wanting
    `vm_mb` inside it."""
    return confine(configuration, _http_pid(run_dir.read(configuration, "platform")), limit_mb=limit_mb,
                   vm_mb=vm_mb, seconds=seconds)


def confine(configuration: dict[str, Any] | None, pid: int, *, limit_mb: int, vm_mb: int,
            seconds: float) -> dict[str, Any]:
    """Process `pid` and a `stress-ng --vm` of `vm_mb` in the run's memory cgroup of `limit_mb`; the
    stress ends by itself after `seconds`."""
    stress_ng = shutil.which("stress-ng")
    if stress_ng is None:
        raise RuntimeError("stress-ng is not installed: `make chaos-tools` installs it")
    if not (MEMORY_ROOT / "memory.limit_in_bytes").exists() or os.geteuid() != 0:
        raise RuntimeError("memory pressure needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory")
    resident = psutil.Process(pid).memory_info().rss
    limit = limit_mb * 2**20
    group = _cgroup(configuration)
    group.mkdir(exist_ok=True)
    (group / "memory.limit_in_bytes").write_text(str(limit))
    (group / "cgroup.procs").write_text(str(pid))
    # stress-ng joins the cgroup before it allocates: its own shell writes itself in, then becomes it.
    stress = subprocess.Popen(
        ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), stress_ng, "--vm", "1",
         "--vm-bytes", f"{vm_mb}M", "--vm-keep", "--timeout", f"{int(seconds)}s", "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _stress[run_dir.run_dir(configuration)] = stress
    squeezed = {"pid": pid, "resident_mb": round(resident / 2**20, 1), "limit_mb": round(limit / 2**20, 1),
                "vm_mb": vm_mb, "cgroup": str(group)}
    run_dir.write(configuration, "memory", squeezed)
    return squeezed


def release_memory(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stop the stress, record what the limit did (how often it was hit, the OOM kills), move what is
    left back to the root cgroup and remove the run's."""
    from gamemetrics.chaos.actions import mark

    stress = _stress.pop(run_dir.run_dir(configuration), None)
    if stress is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stress.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            stress.wait(timeout=30)
    group = _cgroup(configuration)
    if not group.exists():
        return {}
    felt = {"limit_hits": int((group / "memory.failcnt").read_text()),
            "max_usage_mb": round(int((group / "memory.max_usage_in_bytes").read_text()) / 2**20, 1),
            "oom_kills": _oom_kills(group)}
    for _ in range(50):  # a process forked meanwhile may appear: move until none is left
        left = [line for line in (group / "cgroup.procs").read_text().split() if line]
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):  # gone already
                (MEMORY_ROOT / "cgroup.procs").write_text(pid)
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        group.rmdir()
    try:
        record = run_dir.read(configuration, "memory")
    except FileNotFoundError:
        record = {}
    run_dir.write(configuration, "memory", {**record, **felt})
    mark(configuration, "removed")
    return felt


def _oom_kills(group: Path) -> int:
    for line in (group / "memory.oom_control").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    return 0


def pressure_was_felt(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The limit was reached during the fault (the cgroup counted hits on it): the pressure was real."""
    try:
        record = run_dir.read(configuration, "memory")
    except FileNotFoundError:
        return {"ok": True, "violations": [], "note": "before the fault"}
    violations = [] if int(record.get("limit_hits", 0)) > 0 else [
        f"the {record.get('limit_mb')} MiB limit was never reached: no memory pressure was felt"]
    return {"ok": not violations, "violations": violations, **record}
