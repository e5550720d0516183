"""`up --kafka` notes its broker in the data dir for `status`; a note left by a killed `up` is ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gamemetrics.platform import announce_local_broker, local_broker_of, withdraw_local_broker


def test_a_running_ups_broker_is_found_and_forgotten_when_it_stops(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    assert local_broker_of(tmp_path) is None
    announce_local_broker(tmp_path, "127.0.0.1:19092")
    assert local_broker_of(tmp_path) == "127.0.0.1:19092"  # this process plays the running `up`
    withdraw_local_broker(tmp_path)
    assert local_broker_of(tmp_path) is None


def test_the_note_of_an_up_that_is_gone_or_a_damaged_note_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    note = tmp_path / "kafka" / "running.json"
    note.write_text(json.dumps({"bootstrap": "127.0.0.1:19092", "pid": int(gone.stdout)}))
    assert local_broker_of(tmp_path) is None
    note.write_text("{not json")
    assert local_broker_of(tmp_path) is None
    note.write_text(json.dumps({"pid": os.getpid()}))
    assert local_broker_of(tmp_path) is None
