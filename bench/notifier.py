"""Notifier benchmark: notifications/s end to end (request sent → delivered) into the in-app
channel and into an SMTP server, with p50/p99 latency, beside the raw rate of the same SMTP server
driven directly.

    python bench/notifier.py [--notifications 2000] [--concurrency 16] [--bulk 100] [--bulk-concurrency 4]
                             [--channels in_app,email] [--modes single,bulk]

It starts an embedded PostgreSQL in a temporary directory, a tenant with a game, players with an
email trait and an OAuth2 client, an `aiosmtpd` server on loopback (plain SMTP, no login: the
provider's own cost is not what is measured), and `gamemetrics serve users,notifier` as its own
process pointed at that server. For each channel it posts --notifications single sends (`POST
/v1/notifications`) on --concurrency kept-alive connections, then as many again in bulk sends of
--bulk (`POST /v1/notifications/bulk`) on --bulk-concurrency connections, each phase reported on
its own row. A notification's latency runs from the moment its request was sent to its delivery:
its record's `sent_at` (the provider took it), or the answer to its request when that came later
(an in-app message is kept by the commit that accepts it; `sent_at` is that transaction's start).
The rate is the notifications over the span from the first request sent to the last delivery
(`accepted/s` is the rate of the POSTs alone). Beside them: the CPU time the notifier's process and
PostgreSQL spent per notification in the phase (idle polling included), which a busy machine
disturbs less than rates. Beside each figure it measures the raw limit of the same machine in the
same run, and prints the ratio: for in-app, single-row INSERT transactions into the same PostgreSQL
at the same concurrency (a notification costs at least one such write); for SMTP, the same number
of messages sent straight to the same SMTP server with `aiosmtplib` on as many kept-open sessions
as the notifier's pool (--smtp-connections). It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from raw_http import connection, exchange, post_request  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import upgrade
from gamemetrics.services.users.clients import secret_digest

console = Console(width=150)
RESULTS = Path(__file__).parent / "results" / "notifier.json"
PLAYERS = 200
TEMPLATE = {"category": "lifecycle", "content": {
    "email": {"subject": "Level {{ level }}", "body": "Well played, {{ name }}!"},
    "in_app": {"title": "Level {{ level }}", "body": "Well played, {{ name }}!"}},
    "sample": {"name": "Ada", "level": 1}}


class Counter:
    def __init__(self, messages: Synchronized[int]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.messages.get_lock():
            self.messages.value += 1
        return "250 OK"


def smtp_server(port: int, messages: Synchronized[int]) -> None:
    """The SMTP peer, in a process of its own: in the bench's, it would share a GIL with the load."""
    smtp = Controller(Counter(messages), hostname="127.0.0.1", port=port)
    smtp.start()
    signal.sigwait({signal.SIGTERM})
    smtp.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used (Linux), to report CPU per notification."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds(pgdata: Path) -> float:
    """CPU time of the PostgreSQL server: the postmaster and its live backends, and the exited ones it reaped."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{postmaster}/stat").read_text().rpartition(")")[2].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError):  # a backend that just ended
            total += cpu_seconds(int(child))
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def setup(url: str) -> tuple[uuid.UUID, str, str]:
    tenant, game = uuid.uuid4(), uuid.uuid4()
    client_id, secret = f"gmc_bench{uuid.uuid4().hex[:8]}", f"gmcs_{uuid.uuid4().hex}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
        conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'bench')", (game, tenant))
        conn.execute("INSERT INTO oauth_clients (client_id, tenant_id, name, secret_hash, scopes)"
                     " VALUES (%s, %s, 'bench', %s, %s)", (client_id, tenant, secret_digest(secret),
                                                           ["notifications:send"]))
        conn.execute("INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen, traits)"
                     " SELECT %s, %s, 'p' || n, now(), now(), jsonb_build_object('email', 'p' || n || '@bench.test')"
                     " FROM generate_series(0, %s - 1) n", (tenant, game, PLAYERS))
    return game, client_id, secret


async def post_all(port: int, token: str, game: uuid.UUID, channel: str, count: int, concurrency: int,
                   run: str, bulk: int) -> tuple[int, dict[str, float]]:
    """Post `count` notifications on `concurrency` kept-alive connections, one a request or (`bulk`)
    that many a request to the bulk endpoint; how many were accepted, and when each idempotency key's
    request was sent and answered (epoch seconds)."""
    accepted = 0
    posted: dict[str, tuple[float, float]] = {}
    queue = iter(range(0, count, bulk or 1))

    def notification(n: int) -> dict[str, Any]:
        return {"game_id": str(game), "player_id": f"p{n % PLAYERS}", "template": "bench",
                "data": {"name": "Ada", "level": n}, "channels": [channel]}

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await connection(port)
        for first in queue:
            if bulk:
                body = json.dumps({"notifications": [{**notification(n), "idempotency_key": f"{run}-{n}"}
                                                     for n in range(first, min(first + bulk, count))]}).encode()
                sent = time.time()
                status, _, answer = await exchange(reader, writer, post_request("/v1/notifications/bulk", token, body))
                posted.update((f"{run}-{n}", (sent, time.time())) for n in range(first, min(first + bulk, count)))
                accepted += json.loads(answer)["accepted"] if status == 200 else 0
                continue
            request = post_request("/v1/notifications", token, json.dumps(notification(first)).encode()).replace(
                b"Content-Type:", f"Idempotency-Key: {run}-{first}\r\nContent-Type:".encode(), 1)
            sent = time.time()
            status, _, _ = await exchange(reader, writer, request)
            posted[f"{run}-{first}"] = (sent, time.time())
            accepted += status == 202
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, posted


def delivered(url: str, channel: str, run: str,
              posted: dict[str, tuple[float, float]]) -> tuple[int, list[float], float]:
    """(sent, latencies in ms, span from the first request sent to the last delivery in s) of the phase `run`."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.idempotency_key, extract(epoch FROM d.sent_at) FROM notifications n"
            " JOIN notification_deliveries d USING (tenant_id, notification_id) WHERE d.channel = %s"
            " AND d.state = 'sent' AND n.idempotency_key LIKE %s", (channel, f"{run}-%")).fetchall()
    if not rows:
        return 0, [], 0.0
    done = {key: max(float(sent), posted[key][1]) for key, sent in rows}
    latencies = [(done[key] - posted[key][0]) * 1000 for key in done]
    span = max(done.values()) - min(sent for sent, _ in posted.values())
    return len(rows), latencies, span


async def raw_smtp(port: int, count: int, sessions: int) -> float:
    """Messages/s sent straight to the SMTP server on `sessions` kept-open sessions."""
    queue = iter(range(count))

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False)
        await client.connect()
        for n in queue:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "bench@bench.test", f"p{n}@bench.test", f"raw {n}"
            message.set_content("Well played, Ada!")
            await client.send_message(message)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    return count / (time.perf_counter() - started)


async def raw_inserts(url: str, count: int, concurrency: int) -> float:
    """Single-row INSERT transactions/s into the same PostgreSQL on `concurrency` connections."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_raw (id uuid PRIMARY KEY, body text)")
    queue = iter(range(count))

    async def writer() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for _ in queue:
                await conn.execute("INSERT INTO bench_raw VALUES (%s, 'Well played, Ada!')", (uuid.uuid4(),))

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--smtp-connections", type=int, default=8)
    parser.add_argument("--channels", default="in_app,email", help="the phases to run, of in_app and email")
    parser.add_argument("--bulk", type=int, default=100,
                        help="after each channel's single sends, the same count again in bulk sends of this many"
                             " (0: none)")
    parser.add_argument("--bulk-concurrency", type=int, default=4)
    parser.add_argument("--modes", default="single,bulk", help="single sends, bulk sends, or both")
    args = parser.parse_args()
    channels = [c for c in ("in_app", "email") if c in args.channels.split(",")]
    root = Path(tempfile.mkdtemp(prefix="gm-bench-notifier-"))
    server = EmbeddedPostgres(root / "pg")
    smtp_port = free_port()
    received: Synchronized[int] = multiprocessing.Value("q", 0)  # type: ignore[assignment]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # the peer inherits it, to sigwait on
    smtp = multiprocessing.Process(target=smtp_server, args=(smtp_port, received), daemon=True)
    smtp.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    process: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {"notifications": args.notifications, "concurrency": args.concurrency,
                               "bulk": args.bulk, "bulk_concurrency": args.bulk_concurrency,
                               "smtp_connections": args.smtp_connections}
    try:
        url = server.ensure_database("bench")
        upgrade(url)
        game, client_id, secret = setup(url)
        port = free_port()
        env = {**os.environ, "GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_PORT": str(port),
               "GAMEMETRICS_DATA_DIR": str(root), "GAMEMETRICS_LOG_LEVEL": "warning",
               "GAMEMETRICS_SMTP_HOST": "127.0.0.1", "GAMEMETRICS_SMTP_PORT": str(smtp_port),
               "GAMEMETRICS_SMTP_STARTTLS": "false",
               "GAMEMETRICS_NOTIFIER_POOL_SIZE": "8",
               "GAMEMETRICS_SMTP_CONNECTIONS": str(args.smtp_connections)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "users,notifier"], env=env,
                                   stdout=(root / "notifier.log").open("wb"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the notifier did not start:\n{(root / 'notifier.log').read_text()[-2000:]}")
            time.sleep(0.2)
        token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials",
                                                        "scope": "notifications:send"},
                           auth=(client_id, secret)).json()["access_token"]
        httpx.put(f"{base}/v1/games/{game}/notification-templates/bench", json=TEMPLATE,
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        for channel in channels:
            for bulk in [b for b, mode in ((0, "single"), (args.bulk, "bulk")) if mode in args.modes.split(",") and
                         (b or mode == "single")]:
                run = f"{channel}-bulk" if bulk else channel
                console.print(f"[dim]{run}: posting {args.notifications} notifications[/dim]")
                cpu_before, db_before = cpu_seconds(process.pid), database_cpu_seconds(server.pgdata)
                posting = time.perf_counter()
                accepted, posted = asyncio.run(post_all(port, token, game, channel, args.notifications,
                                                args.bulk_concurrency if bulk else args.concurrency, run, bulk))
                posted_s = time.perf_counter() - posting
                wait_until = time.monotonic() + 300
                while (sent := delivered(url, channel, run, posted))[0] < accepted and time.monotonic() < wait_until:
                    time.sleep(0.2)
                count, latencies, span = sent
                cpu_ms = (cpu_seconds(process.pid) - cpu_before) * 1000
                db_ms = (database_cpu_seconds(server.pgdata) - db_before) * 1000
                results[run] = {"accepted": accepted, "delivered": count,
                                "server_cpu_ms_per_notification": round(cpu_ms / count, 3) if count else None,
                                "database_cpu_ms_per_notification": round(db_ms / count, 3) if count else None,
                                "accepted_per_second": round(accepted / posted_s, 1),
                                "per_second": round(count / span, 1) if span else None,
                                "p50_ms": round(percentile(latencies, 0.5), 1),
                                "p99_ms": round(percentile(latencies, 0.99), 1)}
        results["smtp_server_received"] = received.value
        results["raw_smtp_per_second"] = round(asyncio.run(raw_smtp(smtp_port, args.notifications,
                                                                    args.smtp_connections)), 1)
        results["raw_insert_per_second"] = round(asyncio.run(raw_inserts(url, args.notifications,
                                                                         args.concurrency)), 1)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        smtp.terminate()
        smtp.join(timeout=10)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    table = Table(title=f"notifier: {args.notifications} notifications per phase; single sends on {args.concurrency}"
                        f" connections, bulk sends on {args.bulk_concurrency}")
    for column in ("path", "delivered", "accepted/s", "notifications/s", "p50 ms", "p99 ms", "CPU ms/n server+db",
                   "raw limit /s", "ratio"):
        table.add_column(column)
    raw = {"in_app": ("PostgreSQL single-row INSERTs", results["raw_insert_per_second"]),
           "email": ("SMTP server driven directly", results["raw_smtp_per_second"])}
    for run, name in (("in_app", "in-app, single sends"), ("in_app-bulk", f"in-app, bulk sends of {args.bulk}"),
                      ("email", "SMTP, single sends"), ("email-bulk", f"SMTP, bulk sends of {args.bulk}")):
        if run not in results:
            continue
        r = results[run]
        limit = raw[run.removesuffix("-bulk")][1]
        r["ratio_to_raw"] = round(r["per_second"] / limit, 3) if r["per_second"] and limit else None
        table.add_row(name, f"{r['delivered']}/{r['accepted']}", str(r["accepted_per_second"]),
                      str(r["per_second"]), str(r["p50_ms"]), str(r["p99_ms"]),
                      f"{r['server_cpu_ms_per_notification']}+{r['database_cpu_ms_per_notification']}",
                      f"{limit} ({raw[run.removesuffix('-bulk')][0]})", str(r["ratio_to_raw"]))
    console.print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **results},
                                  indent=2) + "\n")


if __name__ == "__main__":
    main()
