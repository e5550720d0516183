"""The experiments' probes: each observes the run's platform or traffic and returns the hypothesis's
verdict with its violations, `{"ok": bool, "violations": [...]}` (the tolerance asks for ok)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from gamemetrics.chaos import checks, lag, platform, run_dir


def _verdict(violations: list[str], **seen: Any) -> dict[str, Any]:
    return {"ok": not violations, "violations": violations, **seen}


def _traffic(configuration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The traffic's record once it stopped; None before the method sent any (the first hypothesis check)."""
    try:
        return run_dir.read(configuration, "traffic")
    except FileNotFoundError:
        return None


def ready(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """/readyz answers 200 now."""
    state = run_dir.read(configuration, "platform")
    try:
        status = httpx.get(f"{state['base_url']}/readyz", timeout=5.0).status_code
    except httpx.HTTPError as exc:
        return _verdict([f"/readyz did not answer: {type(exc).__name__}"])
    return _verdict([] if status == 200 else [f"/readyz answered {status}"], status=status)


def ready_within(configuration: dict[str, Any] | None = None, seconds: float = 30.0) -> dict[str, Any]:
    """/readyz answers 200 within `seconds` of the fault's removal."""
    state = run_dir.read(configuration, "platform")
    try:
        since = float(run_dir.read(configuration, "marks").get("removed", time.time()))
    except FileNotFoundError:  # before the fault: ready within `seconds` from now
        since = time.time()
    samples: list[tuple[float, bool]] = [(since, False)]
    while time.time() - since <= seconds:
        try:
            healthy = httpx.get(f"{state['base_url']}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            healthy = False
        samples.append((time.time(), healthy))
        if healthy:
            break
        time.sleep(0.2)
    return _verdict(checks.recovered(samples, seconds), recovered_after=round(samples[-1][0] - since, 3))


def lag_drains(configuration: dict[str, Any] | None = None, seconds: float = 60.0) -> dict[str, Any]:
    """Every consumer group's lag, from `gamemetrics status --json --watch`, reaches 0 within `seconds`."""
    samples = lag.drain(run_dir.read(configuration, "platform"), seconds)
    lag.record(configuration, samples)  # the series of the report goes on through the drain
    if not samples:
        return _verdict([f"no lag report came within {lag.FIRST_REPORT_SECONDS:g}s"], lag=None)
    return _verdict(checks.lag_drained(samples, seconds), lag=samples[-1][1],
                    drained_after=round(samples[-1][0] - samples[0][0], 3))


def stored_exactly_once(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every event the traffic saw acknowledged is in the events table once, and nothing else is."""
    state = run_dir.read(configuration, "platform")
    traffic = _traffic(configuration)
    if traffic is None:
        return _verdict([], note="before the traffic")
    with psycopg.connect(platform.database_url_of(state), autocommit=True) as conn:
        stored = [r[0] for r in conn.execute("SELECT event_id::text FROM events WHERE tenant_id = %s",
                                             (state["tenant_id"],)).fetchall()]
    violations = checks.exactly_once(traffic["acknowledged"], stored)
    if traffic["undelivered"]:
        violations.append(f"{len(traffic['undelivered'])} events were never acknowledged")
    if not traffic["acknowledged"]:
        violations.append("no event was acknowledged: the run proves nothing")
    return _verdict(violations, acknowledged=len(traffic["acknowledged"]), stored=len(stored))


def refusals_well_formed(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every refusal the traffic met was a 503 with Retry-After; no 500, no hang."""
    traffic = _traffic(configuration)
    if traffic is None:
        return _verdict([], note="before the traffic")
    answers = traffic["answers"]
    refused = sum(1 for a in answers if a.get("status") != 200)
    return _verdict(checks.refusals(answers), answers=len(answers), refused=refused)


def services_answer(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The other services keep answering: /healthz and /metrics, through the load balancer when the run has one."""
    state = run_dir.read(configuration, "platform")
    base_url = state.get("traffic_url") or state["base_url"]
    violations = []
    for path in ("/healthz", "/metrics"):
        try:
            status = httpx.get(f"{base_url}{path}", timeout=5.0).status_code
        except httpx.HTTPError as exc:
            violations.append(f"{path} did not answer: {type(exc).__name__}")
            continue
        if status != 200:
            violations.append(f"{path} answered {status}")
    return _verdict(violations)


def held(value: dict[str, Any] | None = None) -> bool:
    """The tolerance of every probe: its verdict says the hypothesis held."""
    # Chaos Toolkit passes the probe's output as `value`; its validation wants the argument optional.
    return isinstance(value, dict) and value.get("ok") is True


def _fault_window(configuration: dict[str, Any] | None) -> tuple[float, float] | None:
    try:
        marks = run_dir.read(configuration, "marks")
    except FileNotFoundError:
        return None
    if "fault" not in marks:
        return None
    return float(marks["fault"]), float(marks.get("removed", time.time()))


def slowed_during_fault(configuration: dict[str, Any] | None = None, at_least_ms: float = 250.0,
                        at_most_ms: float = 5000.0) -> dict[str, Any]:
    """Requests sent during the fault were acknowledged, slower by the fault (at least `at_least_ms`
    at the median) but none slower than `at_most_ms`."""
    traffic, window = _traffic(configuration), _fault_window(configuration)
    if traffic is None or window is None:
        return _verdict([], note="before the fault")
    return _verdict(checks.slowed_by_fault(traffic["answers"], *window, at_least_ms, at_most_ms))


def refused_during_fault(configuration: dict[str, Any] | None = None, at_least: int = 1) -> dict[str, Any]:
    """At least `at_least` requests sent during the fault were refused with 503 and Retry-After."""
    traffic, window = _traffic(configuration), _fault_window(configuration)
    if traffic is None or window is None:
        return _verdict([], note="before the fault")
    return _verdict(checks.refused_during_fault(traffic["answers"], *window, at_least))


def group_members(configuration: dict[str, Any] | None = None, group: str = "processor",
                  members: int = 1) -> dict[str, Any]:
    """The local broker's consumer group `group` has `members` members now."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from gamemetrics.platform import local_broker_of

    state = run_dir.read(configuration, "platform")
    bootstrap = local_broker_of(Path(state["data_dir"]))
    if bootstrap is None:
        return _verdict(["the platform runs no local Kafka broker"])
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    except KafkaException as exc:
        return _verdict([f"group {group} could not be described: {exc}"])
    seen = [str(m.member_id) for m in described.members]
    return _verdict(checks.members(seen, members, group), members=seen, state=str(described.state))
