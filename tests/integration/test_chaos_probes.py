"""Every chaos probe reports a violation when it is given one: a lost, doubled or stray event, a 500,
a 503 without Retry-After, a hang, a lag that never drains, a /readyz that never recovers, a
service that stops answering; and holds when nothing is wrong."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gamemetrics.chaos import checks, probes

Configuration = dict[str, Any]


@pytest.fixture
def run(tmp_path: Path) -> Configuration:
    return {"run_dir": str(tmp_path / "run")}


def write(configuration: Configuration, name: str, data: dict[str, Any]) -> None:
    folder = Path(configuration["run_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))


def traffic(acknowledged: list[str], answers: list[dict[str, Any]] | None = None,
            undelivered: list[str] | None = None) -> dict[str, Any]:
    return {"acknowledged": acknowledged, "answers": answers or [{"status": 200, "at": 1.0}],
            "undelivered": undelivered or [], "started": 0.0}


# ---------------------------------------------------------------- stored exactly once, on a real database


def store(url: str, tenant: uuid.UUID, event_id: str, at: datetime) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT gm_ensure_event_partition((%s AT TIME ZONE 'UTC')::date)", (at,))
        conn.execute(
            "INSERT INTO events (tenant_id, game_id, event_id, event_type, player_id, event_time, received_at, source)"
            " VALUES (%s, %s, %s, 'session_start', 'p', %s, now(), 'native')",
            (tenant, uuid.uuid4(), event_id, at),
        )


def test_stored_exactly_once_reports_a_lost_a_doubled_and_a_stray_event(run: Configuration,
                                                                        database_url: str) -> None:
    tenant = uuid.uuid4()
    kept, doubled, lost, stray = (str(uuid.uuid4()) for _ in range(4))
    now = datetime.now(UTC)
    store(database_url, tenant, kept, now)
    store(database_url, tenant, doubled, now)
    store(database_url, tenant, doubled, now - timedelta(seconds=1))  # the same id at another time
    store(database_url, tenant, stray, now)
    write(run, "platform", {"database_url": database_url, "tenant_id": str(tenant)})
    write(run, "traffic", traffic([kept, doubled, lost]))
    verdict = probes.stored_exactly_once(run)
    assert not verdict["ok"] and not probes.held(verdict)
    text = "\n".join(verdict["violations"])
    assert f"1 acknowledged events were not stored, e.g. ['{lost}']" in text
    assert f"1 events were stored more than once, e.g. ['{doubled}']" in text
    assert f"1 stored events were never acknowledged, e.g. ['{stray}']" in text

    write(run, "traffic", traffic([kept, stray, doubled], undelivered=[lost]))
    verdict = probes.stored_exactly_once(run)
    assert verdict["violations"] == [f"1 events were stored more than once, e.g. ['{doubled}']",
                                     "1 events were never acknowledged"]


def test_stored_exactly_once_holds_when_each_acknowledged_event_is_stored_once(run: Configuration,
                                                                              database_url: str) -> None:
    tenant = uuid.uuid4()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for event_id in ids:
        store(database_url, tenant, event_id, datetime.now(UTC))
    write(run, "platform", {"database_url": database_url, "tenant_id": str(tenant)})
    write(run, "traffic", traffic(ids))
    verdict = probes.stored_exactly_once(run)
    assert verdict["ok"] and probes.held(verdict), verdict
    write(run, "traffic", traffic([]))
    assert probes.stored_exactly_once(run)["violations"][-1] == "no event was acknowledged: the run proves nothing"


# ---------------------------------------------------------------- refusals


def test_refusals_reports_a_500_a_503_without_retry_after_and_a_hang(run: Configuration) -> None:
    write(run, "platform", {})
    write(run, "traffic", traffic(["a"], answers=[
        {"status": 200, "at": 1.0},
        {"status": 503, "retry_after": "1", "at": 2.0},
        {"status": 500, "at": 3.0, "body": "Internal Server Error"},
        {"status": 503, "retry_after": None, "at": 4.0},
        {"status": None, "seconds": 30.0, "at": 5.0, "error": "ReadTimeout"},
    ]))
    verdict = probes.refusals_well_formed(run)
    assert verdict["violations"] == ["a 500 at 3.0: Internal Server Error", "a 503 without Retry-After at 4.0",
                                     "no answer within 30.0s at 5.0: ReadTimeout"]
    assert verdict["refused"] == 4 and not probes.held(verdict)
    write(run, "traffic", traffic(["a"], answers=[{"status": 503, "retry_after": "1", "at": 2.0},
                                                 {"status": 200, "at": 3.0}]))
    assert probes.held(probes.refusals_well_formed(run))


# ---------------------------------------------------------------- lag, through `gamemetrics status --json`


def test_lag_drains_reports_a_lag_that_never_drains(run: Configuration, database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO bus_partitions (topic, partition, next_offset) VALUES ('player.events.raw', 0, 10)"
                     " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = 10")
        conn.execute("INSERT INTO bus_offsets (group_id, topic, partition, next_offset)"
                     " VALUES ('processor', 'player.events.raw', 0, 3)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEMETRICS_")}
    env |= {"GAMEMETRICS_DATABASE_URL": database_url, "GAMEMETRICS_DATA_DIR": str(tmp_path)}
    write(run, "platform", {"env": env})
    verdict = probes.lag_drains(run, seconds=1.0)
    assert verdict["violations"] == ["the consumer lag did not return to 0 within 1s (last seen: 7)"]
    assert verdict["lag"] == 7
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE bus_offsets SET next_offset = 10")
    assert probes.held(probes.lag_drains(run, seconds=1.0))


def test_lag_drained_counts_only_a_zero_within_the_time() -> None:
    assert checks.lag_drained([(0.0, 5), (1.0, 2), (2.0, 0)], 3.0) == []
    assert checks.lag_drained([(0.0, 5), (4.0, 0)], 3.0) != []
    assert checks.lag_drained([], 3.0) == ["the consumer lag did not return to 0 within 3s (last seen: unknown)"]


# ---------------------------------------------------------------- readiness and the other services, on loopback


class Answers:
    """What a loopback HTTP server answers, per path; changed while it runs."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}


@pytest.fixture
def server() -> Iterator[tuple[str, Answers]]:
    answers = Answers()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(answers.status.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()
    httpd.server_close()


def test_ready_within_reports_a_readyz_that_never_recovers(run: Configuration,
                                                          server: tuple[str, Answers]) -> None:
    base_url, answers = server
    write(run, "platform", {"base_url": base_url})
    answers.status["/readyz"] = 503
    verdict = probes.ready_within(run, seconds=1.0)
    assert verdict["violations"] == ["not ready again within 1s"]
    assert probes.ready(run)["violations"] == ["/readyz answered 503"]
    answers.status["/readyz"] = 200
    assert probes.held(probes.ready_within(run, seconds=1.0))
    assert probes.held(probes.ready(run))


def test_services_answer_reports_a_service_that_fails_or_is_gone(run: Configuration,
                                                                server: tuple[str, Answers]) -> None:
    base_url, answers = server
    write(run, "platform", {"base_url": base_url})
    answers.status |= {"/healthz": 200, "/metrics": 500}
    assert probes.services_answer(run)["violations"] == ["/metrics answered 500"]
    answers.status["/metrics"] = 200
    assert probes.held(probes.services_answer(run))
    write(run, "platform", {"base_url": "http://127.0.0.1:9"})  # the discard port: nothing listens
    assert probes.services_answer(run)["violations"] == ["/healthz did not answer: ConnectError",
                                                         "/metrics did not answer: ConnectError"]


# ---------------------------------------------------------------- the fault's own effect, in its window


def test_slowed_during_fault_reports_a_fault_that_was_not_in_the_path_and_a_stall(run: Configuration) -> None:
    write(run, "marks", {"fault": 10.0, "removed": 20.0})
    quick = [{"status": 200, "at": 11.0 + n, "seconds": 0.05} for n in range(5)]
    write(run, "traffic", traffic(["a"], answers=[{"status": 200, "at": 5.0, "seconds": 2.0}, *quick]))
    verdict = probes.slowed_during_fault(run, at_least_ms=250, at_most_ms=5000)
    assert verdict["violations"] == ["the median acknowledgement during the fault took 50 ms, under 250 ms:"
                                     " the fault was not in the path"]
    slowed = [{"status": 200, "at": 11.0 + n, "seconds": 0.7} for n in range(5)]
    write(run, "traffic", traffic(["a"], answers=[*slowed, {"status": 200, "at": 17.0, "seconds": 9.0}]))
    assert probes.slowed_during_fault(run, at_least_ms=250, at_most_ms=5000)["violations"] == [
        "an acknowledgement during the fault took 9000 ms, over 5000 ms"]
    write(run, "traffic", traffic(["a"], answers=[{"status": 503, "retry_after": "1", "at": 12.0, "seconds": 5}]))
    assert not probes.held(probes.slowed_during_fault(run))
    write(run, "traffic", traffic(["a"], answers=slowed))
    assert probes.held(probes.slowed_during_fault(run, at_least_ms=250, at_most_ms=5000))


def test_refused_during_fault_reports_a_fault_that_went_unnoticed(run: Configuration) -> None:
    write(run, "marks", {"fault": 10.0, "removed": 20.0})
    outside = {"status": 503, "retry_after": "1", "at": 25.0}  # after the fault: not its refusal
    write(run, "traffic", traffic(["a"], answers=[{"status": 200, "at": 12.0}, outside,
                                                 {"status": 503, "retry_after": None, "at": 13.0}]))
    verdict = probes.refused_during_fault(run, at_least=1)
    assert verdict["violations"] == ["0 requests were refused with 503 and Retry-After during the fault, fewer"
                                     " than 1: the fault went unnoticed"]
    write(run, "traffic", traffic(["a"], answers=[{"status": 503, "retry_after": "1", "at": 14.0}]))
    assert probes.held(probes.refused_during_fault(run, at_least=1))


def test_the_fault_probes_hold_before_the_fault(run: Configuration) -> None:
    assert probes.slowed_during_fault(run)["note"] == "before the fault"
    assert probes.refused_during_fault(run)["note"] == "before the fault"
