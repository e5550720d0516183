"""The local broker's storage formats whatever its random cluster id looks like."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamemetrics.adapters.kafka import local
from tests.kafka_broker import LIBS


def test_a_cluster_id_that_begins_with_a_dash_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sixty-fourth of random ids begin with "-", which the storage tool took for an option.
    monkeypatch.setattr(local, "_cluster_id", lambda: "-" + "A" * 21)
    broker = local.LocalBroker(tmp_path / "kafka", LIBS)
    broker.prepare()
    assert "cluster.id=-AAAAAAAAAAAAAAAAAAAAA" in (tmp_path / "kafka" / "data" / "meta.properties").read_text()
