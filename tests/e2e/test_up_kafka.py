"""`gamemetrics up --kafka` (what `make up KAFKA=1` runs) as an operator uses it: the platform with its
bus on a local broker in the data dir, a key made with the CLI, events stored, and a clean Ctrl-C."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import PATIENCE_S, _stop_cleanly, _wait_ready, interrupted_on_failure, new_event, start_platform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPOSITORY = Path(__file__).resolve().parents[2]


def test_up_with_kafka_stores_events_through_the_local_broker_and_stops_cleanly() -> None:
    # From the repository, where `make up KAFKA=1` runs it, beside the jars in .kafka/libs.
    platform = start_platform("gamemetrics-up-kafka-", "--kafka", cwd=REPOSITORY)
    process = platform.process
    with interrupted_on_failure(platform):
        _wait_ready(platform)
        found = re.search(r"Kafka ready at (\S+);", platform.log_path.read_text(errors="replace"))
        assert found, f"no Kafka broker was started:\n{platform.log_tail()}"
        bootstrap = found.group(1)

        tenant = platform.cli("admin", "create-tenant", "Kafka Studio")["tenant_id"]
        platform.game_id = platform.cli("admin", "create-game", "--tenant", tenant, "Kafka Game")["game_id"]
        key = platform.cli("admin", "create-write-key", "--game", platform.game_id)["write_key"]
        events = [new_event(player=f"player-{i % 3}") for i in range(12)]
        for batch in (events[:5], events[5:]):
            assert platform.send(batch, key=key)["accepted"] == len(batch)

        # `status` beside the platform finds the broker `up` started in the data dir and reads the lag there.
        assert "GAMEMETRICS_KAFKA_BOOTSTRAP" not in platform.env
        assert bootstrap in (platform.data_dir / "kafka" / "running.json").read_text()
        deadline = time.monotonic() + PATIENCE_S
        while True:
            report = platform.cli("status", "--json")
            game = next(g for g in report["games"] if g["game_id"] == platform.game_id)
            processor = [g for g in report["consumer_groups"] if g["group_id"] == "processor"]
            raw = [p for g in processor for p in g["partitions"] if p["topic"] == "player.events.raw"]
            if game["events_stored"] == len(events) and raw and sum(p["lag"] for p in raw) == 0:
                break
            assert process.poll() is None, f"gamemetrics up exited ({process.returncode}):\n{platform.log_tail()}"
            assert time.monotonic() < deadline, f"events not stored through Kafka: {report}\n{platform.log_tail()}"
            time.sleep(0.5)
        assert game["events_dead_lettered"] == 0
        assert sum(p["end"] for p in raw) == len(events)  # every event went through the broker, once
    _stop_cleanly(platform)
    assert not (platform.data_dir / "kafka" / "running.json").exists()  # gone with the broker
    shutil.rmtree(platform.data_dir, ignore_errors=True)  # kept when the platform did not stop cleanly, to look into
