"""The Locust scenarios (bench/locustfile.py) against a `gamemetrics up` started on this machine,
for a bounded time each; prints achieved rates and latency percentiles and keeps Locust's CSV and
HTML reports.

    .venv/bin/python bench/load.py --seconds 20 --users 8 --out load-results
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gamemetrics.chaos import platform

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# What the scenarios are measured against (the seed's targets).
TARGETS = {"IngestUser": "50,000 events/s", "DashboardUser": "5,000 requests/s",
           "RecommendationsUser": "1,000 requests/s"}


def run_scenario(user: str, host: str, env: dict[str, str], seconds: int, users: int,
                 out: Path) -> list[dict[str, str]]:
    """One headless Locust run of `user`, bounded by `seconds`; the rows of its stats CSV."""
    prefix = out / user
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host, "-u", str(users),
         "-r", str(users), "--run-time", f"{seconds}s", "--stop-timeout", "5", "--csv", str(prefix),
         "--html", f"{prefix}.html", "--only-summary", "--loglevel", "WARNING", user],
        env=env, check=False, timeout=seconds + 60,
    )
    with open(f"{prefix}_stats.csv", newline="") as stats:
        return list(csv.DictReader(stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="Length of each scenario's run (at most 300).")
    parser.add_argument("--users", type=int, default=8, help="Concurrent Locust users per scenario.")
    parser.add_argument("--out", type=Path, default=Path("load-results"))
    args = parser.parse_args()
    seconds = max(1, min(args.seconds, 300))  # bounded: loopback load must end by itself
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(width=180)
    state = platform.start(Path(tempfile.mkdtemp(prefix="gamemetrics-load-")))
    try:
        token = platform.cli(state["env"], "admin", "issue-token", "--tenant", state["tenant_id"], "--scopes",
                             "analytics:read recommendations:read")["access_token"]
        env = {**os.environ, "LOAD_WRITE_KEY": state["write_key"], "LOAD_TOKEN": token,
               "LOAD_GAME_ID": state["game_id"], "LOAD_PLAYERS": ",".join(f"load-player-{n}" for n in range(50))}
        table = Table(title=f"Locust on {state['base_url']}, {seconds}s per scenario, {args.users} users")
        for column in ("scenario", "target", "request", "requests", "failures", "req/s", "events/s", "p50 ms",
                       "p95 ms", "p99 ms"):
            table.add_column(column)
        for user, target in TARGETS.items():
            for row in run_scenario(user, state["base_url"], env, seconds, args.users, args.out):
                if row["Name"] == "Aggregated" and user == "IngestUser":
                    continue
                rate = float(row["Requests/s"])
                events = f"{rate * int(os.environ.get('LOAD_BATCH', '100')):.0f}" if user == "IngestUser" else ""
                table.add_row(user, target, row["Name"], row["Request Count"], row["Failure Count"], f"{rate:.1f}",
                              events, row["50%"], row["95%"], row["99%"])
        console.print(table)
        console.print(f"Locust's CSV and HTML reports in {args.out}/")
    finally:
        platform.stop(state)
        platform.stop_postgres(state)
        platform.remove_data(state)


if __name__ == "__main__":
    main()
