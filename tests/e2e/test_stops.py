"""Clean stops however a process was started: `gamemetrics up` and every `gamemetrics serve <name>`
started with SIGINT ignored (as a shell starts a background job) stop on SIGINT and on SIGTERM,
exit 0, and leave no child behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gamemetrics import registry
from tests.conftest import free_port
from tests.e2e.conftest import (
    PATIENCE_S,
    _stop_cleanly,
    catches,
    ignore_sigint,
    interrupted_on_failure,
    new_event,
    start_platform,
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

STOPS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.parametrize(("signum", "to_group"),
                         [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT to the process group"])
def test_up_started_with_sigint_ignored_stops_cleanly(signum: int, to_group: bool) -> None:
    """Also when Ctrl-C reaches every process at once and `up` then stops its children."""
    platform = start_platform("gamemetrics-stop-", sigint_ignored=True)
    with interrupted_on_failure(platform):
        wait_ready(platform)
        tenant = platform.cli("admin", "create-tenant", "Stop Studio")["tenant_id"]
        platform.game_id = platform.cli("admin", "create-game", "--tenant", tenant, "Stop Game")["game_id"]
        key = platform.cli("admin", "create-write-key", "--game", platform.game_id)["write_key"]
        assert platform.send([new_event()], key=key)["accepted"] == 1
        platform.wait_drained()  # the processors are running, so they are stopped too
        served = [c for c in psutil.Process(platform.process.pid).children() if "serve" in c.cmdline()]
        expected = {",".join(registry.HTTP_NAMES), *(s.name for s in registry.SERVICES if not s.serves_http)}
        assert {c.cmdline()[c.cmdline().index("serve") + 1] for c in served} == expected
        for child in served:
            assert catches(child.pid, signal.SIGINT) and catches(child.pid, signal.SIGTERM), child.cmdline()
    _stop_cleanly(platform, signum, to_group=to_group)
    shutil.rmtree(platform.data_dir, ignore_errors=True)


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("name", registry.NAMES)
def test_a_service_started_with_sigint_ignored_stops_cleanly(
        name: str, signum: int, database_url: str, tmp_path: Path) -> None:
    http = registry.service(name).serves_http
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEMETRICS_", "PROMETHEUS_"))}
    env |= {"GAMEMETRICS_DATABASE_URL": database_url, "GAMEMETRICS_DATA_DIR": str(tmp_path),
            "GAMEMETRICS_HOST": "127.0.0.1", "GAMEMETRICS_PORT": str(port)}
    # A worker service is probed on a health port of its own.
    options = [] if http else ["--health-port", str(port)]
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", name, *options], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, preexec_fn=ignore_sigint)
    try:
        body = _ready(f"http://127.0.0.1:{port}/readyz", process, log_path)
        assert list(body["services"]) == [name] and body["status"] == "ok", body
        process.send_signal(signum)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text(errors="replace")
    assert code == 0, f"serve {name} exited with {code} after {signal.Signals(signum).name}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]


def _ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited ({process.returncode}):\n{log_path.read_text(errors='replace')}"
        try:
            response = httpx.get(url, timeout=1.0)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {PATIENCE_S:.0f}s:\n{log_path.read_text(errors='replace')}")
