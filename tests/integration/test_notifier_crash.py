"""A notifier killed with SIGKILL in the middle of a burst, then started again: every notification
it accepted is delivered exactly once per channel, none is lost, none is sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import free_port
from tests.integration.notifier_fixtures import SEND, WELCOME
from tests.integration.users_fixtures import add_tenant, basic

BURST = 120
PATIENCE_S = 60.0


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "users,notifier"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the notifier exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the notifier was not ready at {base_url}:\n{log.read_text()[-3000:]}")


def _count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def test_sigkill_mid_burst_loses_nothing_and_sends_nothing_twice(database_url: str, tmp_path: Path) -> None:
    tenant, game, client_id, secret = add_tenant(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen, traits)"
                     " SELECT %s, %s, 'p' || n, now(), now(),"
                     " jsonb_build_object('email', 'p' || n || '@studio.example')"
                     " FROM generate_series(0, 49) n", (tenant, game))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GAMEMETRICS_DATABASE_URL": database_url, "GAMEMETRICS_PORT": str(port),
           "GAMEMETRICS_DATA_DIR": str(tmp_path), "GAMEMETRICS_LOG_LEVEL": "warning",
           "GAMEMETRICS_NOTIFY_LEASE_SECONDS": "2", "GAMEMETRICS_NOTIFY_POLL_SECONDS": "0.05",
           "GAMEMETRICS_NOTIFY_BATCH_SIZE": "20"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "notifier.log"
    process = _serve(env, log)
    try:
        _ready(base_url, process, log)
        token = httpx.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials", "scope": SEND},
                           headers=basic(client_id, secret)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.put(f"{base_url}/v1/games/{game}/notification-templates/welcome", json=WELCOME,
                         headers=auth).status_code == 201
        accepted: set[str] = set()

        def send(n: int) -> None:
            body = {"game_id": str(game), "player_id": f"p{n % 50}", "template": "welcome",
                    "data": {"name": "Ada", "level": n}, "channels": ["email", "in_app"]}
            try:
                answer = httpx.post(f"{base_url}/v1/notifications", json=body, timeout=5.0,
                                    headers={**auth, "Idempotency-Key": f"burst-{n}"})
            except httpx.HTTPError:
                return  # the process died under this request: not accepted
            if answer.status_code == 202:
                accepted.add(answer.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, n) for n in range(BURST)]
            deadline = time.monotonic() + PATIENCE_S
            while _count(database_url, "SELECT count(*) FROM outbox") < 40:
                assert time.monotonic() < deadline, "nothing was delivered"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
            for future in futures:
                future.result()
        delivered_at_kill = _count(database_url, "SELECT count(*) FROM outbox")
        assert len(accepted) > 0 and delivered_at_kill < 2 * BURST
        process = _serve(env, log)
        _ready(base_url, process, log)
        # Requests that were refused at the kill are sent again with their keys: once each, still.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(BURST)))
        assert len(accepted) == BURST
        deadline = time.monotonic() + PATIENCE_S
        while _count(database_url, "SELECT count(*) FROM notification_deliveries WHERE state <> 'sent'"):
            assert time.monotonic() < deadline, "deliveries still pending"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert _count(database_url, "SELECT count(*) FROM notifications") == BURST
    assert _count(database_url, "SELECT count(*) FROM notification_deliveries WHERE state = 'sent'") == 2 * BURST
    # Exactly once per channel: each delivery's message is in the outbox once, and nothing else is.
    assert _count(database_url, "SELECT count(*) FROM outbox") == 2 * BURST
    assert _count(database_url, "SELECT count(*) FROM notification_deliveries d JOIN outbox o"
                                " USING (tenant_id, message_id)") == 2 * BURST
