"""`gamemetrics status --watch`: a series of reports on one connection, each stamped with its time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg


def test_a_watch_prints_one_stamped_report_a_line_and_follows_the_lag(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO bus_partitions (topic, partition, next_offset) VALUES ('player.events.raw', 1, 10)"
                     " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = 10")
        conn.execute("INSERT INTO bus_offsets (group_id, topic, partition, next_offset)"
                     " VALUES ('status-watch', 'player.events.raw', 1, 4)"
                     " ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = 4")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEMETRICS_")}
    env |= {"GAMEMETRICS_DATABASE_URL": database_url, "GAMEMETRICS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "status", "--json", "--watch", "0.2",
                           "--count", "3"], env=env, capture_output=True, text=True, timeout=120, check=True)
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(reports) == 3
    times = [report["time"] for report in reports]
    assert times == sorted(times) and times[-1] - times[0] >= 0.4 - 0.05
    for report in reports:
        (group,) = [g for g in report["consumer_groups"] if g["group_id"] == "status-watch"]
        assert group["lag"] == 6
