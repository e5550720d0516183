"""Dashboard benchmark: time from navigation to the overview's charts drawn for a 90-day range, and
what open dashboards cost the host and ingest.

    python bench/dashboard.py [--events 10000000] [--players 2000] [--days 120] [--dashboards 20]
                              [--duration 10] [--keep DIR]

It loads a game's history with bench/analytics.py's loader (generated inside PostgreSQL straight into
the events table, the rollups built by the processor's own SQL; not through ingest), starts the HTTP
host (`gamemetrics serve ingest,analytics,users,dashboard`) as its own process, makes an operator
and a write key with the CLI, and drives Debian's Chromium headless:

- first charts: the overview of the last 90 days, from navigation start to the page's
  DOMContentLoaded (its charts are SVG in the page, drawn as it is parsed), read from the browser's
  Performance API; the first load (the analytics answers uncached) and the median of five more;
- idle cost: host CPU seconds per second with `--dashboards` overviews open (each polling its live
  panel every second) and nothing else happening, per open dashboard;
- ingest: events/s accepted by ingest for about `--duration` seconds with no dashboard open, then
  with `--dashboards` open, alternated `--rounds` times (medians), and the host's CPU meanwhile;
  "without" keeps the pages loaded with their polling stopped, and every phase starts once the
  processor has drained the raw topic.

Beside them it prints the raw limits of the same machine in the same run: PostgreSQL's COPY rate
of event rows into a table shaped like `events` (against the load's events/s), and the same
overview page's bytes served by a server that does nothing else (a thread of this script), from
navigation to DOMContentLoaded in the same browser (against the first charts).

A processor runs beside the host (`gamemetrics serve processor`), so the live panels count the events
ingest accepts, through the dashboard's one consumer of the processed stream. The browser, the
processor and the load generator run on the same machine as the host; their CPU is not the host's.
It prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from analytics import _free_port, database, load  # bench/ is the script's directory
from ingest import batch_bodies, copy_rate, make_events, send_all
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By

console = Console()
RESULTS = Path(__file__).parent / "results" / "dashboard.json"
STATIC = Path(__file__).parents[1] / "src" / "gamemetrics" / "services" / "dashboard" / "static"
PASSWORD = "bench operator password"
EMAIL = "bench@gamemetrics.local"


def start_host(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = _env(url, data_dir) | {"GAMEMETRICS_PORT": str(port), "GAMEMETRICS_LOG_LEVEL": "warning",
                                 "GAMEMETRICS_KEY_RATE_EVENTS_PER_SECOND": "10000000",
                                 "GAMEMETRICS_KEY_RATE_BURST_EVENTS": "10000000"}
    log = (data_dir / "host.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "ingest,analytics,users,dashboard"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the host exited:\n{(data_dir / 'host.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the host was not ready within 90s")


def start_processor(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """A processor beside the host, so the events ingest accepts reach the dashboards' live feed."""
    port = _free_port()
    log = (data_dir / "processor.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gamemetrics.cli", "serve", "processor", "--health-port",
                                str(port)], env=_env(url, data_dir) | {"GAMEMETRICS_LOG_LEVEL": "warning"},
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the processor exited:\n{(data_dir / 'processor.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the processor was not ready within 90s")


def _env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return env | {"GAMEMETRICS_DATABASE_URL": url, "GAMEMETRICS_DATA_DIR": str(data_dir)}


def cli(url: str, data_dir: Path, *args: str, stdin: str | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gamemetrics.cli", *args], env=_env(url, data_dir), check=True,
                         capture_output=True, text=True, input=stdin).stdout
    return dict(json.loads(out))


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=ChromeService(shutil.which("chromedriver")))


def first_charts(driver: webdriver.Chrome, base: str, game: str) -> float:
    """Milliseconds from navigation start to DOMContentLoaded of the 90-day overview."""
    driver.get(f"{base}/dashboard/games/{game}?range=90d")
    assert driver.find_elements(By.CSS_SELECTOR, "#tile-dau svg.chart"), driver.page_source[:500]
    entry = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
    return float(entry["domContentLoadedEventEnd"])


def raw_page_ms(driver: webdriver.Chrome, base: str, game: str) -> float:
    """Median milliseconds to DOMContentLoaded of the overview's own bytes (and its static files) served
    by a server that only hands them out: what the browser needs whatever the platform does."""
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    page = httpx.get(f"{base}/dashboard/games/{game}?range=90d", cookies=cookies, timeout=60).content

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path.startswith("/dashboard/static/"):
                body, kind = (STATIC / self.path.rsplit("/", 1)[-1]).read_bytes(), "text/css" \
                    if self.path.endswith(".css") else "text/javascript"
            elif self.path.endswith("/live"):
                body, kind = b'{"at": "", "last_minute": 0, "per_minute": []}', "application/json"
            else:
                body, kind = page, "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        times = []
        for _ in range(6):
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/dashboard/games/{game}?range=90d")
            entry = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
            times.append(float(entry["domContentLoadedEventEnd"]))
        return statistics.median(times[1:])
    finally:
        server.shutdown()


def drained(url: str, timeout_s: float = 120.0) -> None:
    """Wait until the processor has committed everything on the raw topic, so a phase does not share
    the machine with the backlog of the one before."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT coalesce(sum(p.next_offset - coalesce(o.next_offset, 0)), 0) FROM bus_partitions p"
                " LEFT JOIN bus_offsets o ON o.group_id = 'processor' AND o.topic = p.topic"
                " AND o.partition = p.partition WHERE p.topic = 'player.events.raw'").fetchone()
            if row is not None and int(row[0]) == 0:
                return
            time.sleep(0.2)
    console.print("[yellow]the processor did not drain the raw topic in time[/]")


def show(driver: webdriver.Chrome, tabs: list[str], url: str | None) -> None:
    """Every tab on `url`, its live panel polling; with None, every tab's polling stopped in the page.

    A stopped page stays loaded (its fetch never answers, so its panel asks no more): closing the
    pages instead would have the browser tear 20 pages down at the start of one phase only."""
    for tab in tabs:
        driver.switch_to.window(tab)
        if url is None:
            driver.execute_script("window.fetch = function () { return new Promise(function () {}); };")
        else:
            driver.get(url)
    time.sleep(2.0)  # the pages' loads done, only their polling left


def host_cpu(process: psutil.Process) -> float:
    return float(sum(process.cpu_times()[:2]) + sum(sum(c.cpu_times()[:2]) for c in process.children(True)))


def ingest_rate(port: int, key: str, events: int, duration: float) -> tuple[float, float]:
    """Events/s ingest accepted while sending for about `duration` seconds, and the seconds taken."""
    bodies = batch_bodies(make_events(events, 500), 500)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ingest", total=events)
        asyncio.run(send_all(port, key, bodies, 8, progress, task))
    took = time.perf_counter() - started
    return events / took, took


def measure(args: argparse.Namespace) -> dict[str, Any]:
    shape = {"players": args.players, "days": args.days}
    with database(args.events, args.keep, shape) as (url, data_dir, loaded):
        if loaded is None:
            console.print(f"[bold]{args.events:,} events[/]: loading {args.days} days of {args.players} players")
            loaded = load(url, args.events, args.players, args.days)
            if args.keep:
                (data_dir / f"loaded-{args.events}.json").write_text(
                    json.dumps({"shape": shape, "loaded": loaded}, default=str))
        game, tenant = loaded["game_id"], loaded["tenant_id"]
        with console.status("measuring the raw COPY rate"):
            copy_rows_s = copy_rate(url, make_events(200_000, 2000), uuid.UUID(tenant), uuid.UUID(game))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        host = start_host(url, data_dir, port)
        processor = start_processor(url, data_dir)
        drivers: list[webdriver.Chrome] = []
        try:
            email = cli(url, data_dir, "admin", "create-operator", "--email", f"{time.time_ns()}-{EMAIL}",
                        "--role", "analyst", "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n")["email"]
            key = cli(url, data_dir, "admin", "create-write-key", "--game", game)["write_key"]
            driver = browser()
            drivers.append(driver)
            driver.get(f"{base}/dashboard/login")
            driver.find_element(By.ID, "email").send_keys(email)
            driver.find_element(By.ID, "password").send_keys(PASSWORD)
            driver.find_element(By.ID, "submit").click()
            time.sleep(0.5)
            cold = first_charts(driver, base, game)
            warm = statistics.median(first_charts(driver, base, game) for _ in range(5))
            raw_ms = raw_page_ms(driver, base, game)
            process = psutil.Process(host.pid)
            per_phase = max(1000, int(args.rate_guess * args.duration))
            ingest_rate(port, key, min(per_phase, 5000), args.duration)  # warm-up: connections, caches, the processor
            tabs = [driver.current_window_handle]
            for _ in range(args.dashboards - 1):
                driver.switch_to.new_window("tab")
                tabs.append(driver.current_window_handle)
            overview = f"{base}/dashboard/games/{game}?range=today"
            drained(url)
            show(driver, tabs, overview)
            cpu, idle_started = host_cpu(process), time.perf_counter()
            time.sleep(args.duration)
            idle_cpu_per_s = (host_cpu(process) - cpu) / (time.perf_counter() - idle_started)
            rounds: list[tuple[float, float]] = []
            cpu_per_event: list[float] = []
            for _ in range(args.rounds):  # alternated, so that the machine's other work falls on both
                show(driver, tabs, None)
                drained(url)
                cpu = host_cpu(process)
                alone, took = ingest_rate(port, key, per_phase, args.duration)
                alone_cpu_per_event = (host_cpu(process) - cpu) / (alone * took)
                show(driver, tabs, overview)
                drained(url)
                cpu = host_cpu(process)
                shared, took = ingest_rate(port, key, per_phase, args.duration)
                ingest_cpu_per_s = (host_cpu(process) - cpu) / took
                rounds.append((alone, shared))
                cpu_per_event.append(alone_cpu_per_event)
            alone = statistics.median(a for a, _ in rounds)
            shared = statistics.median(b for _, b in rounds)
        finally:
            for driver in drivers:
                driver.quit()
            for child in (host, processor):
                child.terminate()
                child.wait(timeout=30)
    load_rate = loaded["events"] / loaded["load_s"] if loaded.get("load_s") else None
    return {"events": loaded["events"], "load_s": loaded["load_s"],
            "load_events_per_s": round(load_rate) if load_rate else None,
            "raw_copy_rows_per_s": round(copy_rows_s),
            "load_over_raw_copy": round(load_rate / copy_rows_s, 2) if load_rate else None,
            "dashboards": args.dashboards, "first_charts_cold_ms": round(cold),
            "first_charts_warm_ms": round(warm), "raw_same_page_ms": round(raw_ms, 1),
            "first_charts_warm_over_raw": round(warm / raw_ms, 1) if raw_ms else None,
            "idle_host_cpu_per_s": round(idle_cpu_per_s, 3),
            "idle_host_cpu_per_dashboard": round(idle_cpu_per_s / args.dashboards, 4),
            # The host is one process on one event loop: the share of its core the open dashboards
            # take is what they would take from ingest when it is bound by that core. Robust where
            # the throughput of a shared machine's phases is not.
            "host_cpu_us_per_ingested_event": round(1e6 * statistics.median(cpu_per_event), 1),
            "ingest_cost_pct_by_cpu": round(100 * idle_cpu_per_s, 1),
            "ingest_alone_events_per_s": round(alone), "ingest_with_dashboards_events_per_s": round(shared),
            "ingest_cost_pct": round(100 * (1 - shared / alone), 1) if alone else None,
            "rounds_alone_with_events_per_s": [[round(a), round(b)] for a, b in rounds],
            "host_cpu_per_s_while_ingesting_with_dashboards": round(ingest_cpu_per_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--dashboards", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="ingest phases without and with the dashboards open")
    parser.add_argument("--rate-guess", type=float, default=5000.0,
                        help="events/s to size the first ingest phase (it sends --duration x this many)")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    results = measure(args)
    table = Table("figure", "value")
    for name, value in results.items():
        table.add_row(name, str(value))
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
