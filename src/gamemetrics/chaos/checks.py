"""The hypotheses as pure checks: each takes what was observed and returns the violations found."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def exactly_once(acknowledged: Iterable[str], stored: Iterable[str]) -> list[str]:
    """Every acknowledged event id stored, none twice, nothing stored that was never acknowledged."""
    wanted = set(acknowledged)
    counts = Counter(stored)
    violations = []
    lost = wanted - counts.keys()
    if lost:
        violations.append(f"{len(lost)} acknowledged events were not stored, e.g. {sorted(lost)[:3]}")
    doubled = [event_id for event_id, n in counts.items() if n > 1]
    if doubled:
        violations.append(f"{len(doubled)} events were stored more than once, e.g. {sorted(doubled)[:3]}")
    stray = counts.keys() - wanted
    if stray:
        violations.append(f"{len(stray)} stored events were never acknowledged, e.g. {sorted(stray)[:3]}")
    return violations


def refusals(answers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Refusals are 503 with Retry-After: never another 5xx, never a request left without an answer."""
    violations = []
    for answer in answers:
        status = answer.get("status")
        if status is None:
            violations.append(f"no answer within {answer.get('seconds')}s at {answer.get('at')}: {answer.get('error')}")
        elif status == 503 and not answer.get("retry_after"):
            violations.append(f"a 503 without Retry-After at {answer.get('at')}")
        elif status >= 500 and status != 503:
            violations.append(f"a {status} at {answer.get('at')}: {answer.get('body', '')[:200]}")
    return violations


def lag_drained(samples: Sequence[tuple[float, int]], within_seconds: float) -> list[str]:
    """The lag reached zero within `within_seconds` of the first sample; samples are (seconds, lag)."""
    for seconds, lag in samples:
        if lag == 0 and seconds - samples[0][0] <= within_seconds:
            return []
    last = samples[-1][1] if samples else "unknown"
    return [f"the consumer lag did not return to 0 within {within_seconds:g}s (last seen: {last})"]


def recovered(samples: Sequence[tuple[float, bool]], within_seconds: float) -> list[str]:
    """A probe answered healthy within `within_seconds` of the first sample; samples are (seconds, healthy)."""
    for seconds, healthy in samples:
        if healthy and seconds - samples[0][0] <= within_seconds:
            return []
    return [f"not ready again within {within_seconds:g}s"]


def _in_window(answers: Sequence[Mapping[str, Any]], start: float, end: float) -> list[Mapping[str, Any]]:
    return [a for a in answers if start <= float(a.get("at", 0.0)) <= end]


def slowed_by_fault(answers: Sequence[Mapping[str, Any]], start: float, end: float, at_least_ms: float,
                    at_most_ms: float) -> list[str]:
    """The acknowledged answers sent during the fault took at least `at_least_ms` at the median (the
    fault was in their path) and none longer than `at_most_ms` (slowed, not stalled)."""
    took = sorted(float(a["seconds"]) * 1000 for a in _in_window(answers, start, end) if a.get("status") == 200)
    if not took:
        return ["no request was acknowledged during the fault: its effect is unknown"]
    violations = []
    median = took[len(took) // 2]
    if median < at_least_ms:
        violations.append(f"the median acknowledgement during the fault took {median:.0f} ms, under"
                          f" {at_least_ms:g} ms: the fault was not in the path")
    if took[-1] > at_most_ms:
        violations.append(f"an acknowledgement during the fault took {took[-1]:.0f} ms, over {at_most_ms:g} ms")
    return violations


def refused_during_fault(answers: Sequence[Mapping[str, Any]], start: float, end: float, at_least: int) -> list[str]:
    """At least `at_least` requests sent during the fault were refused with 503 and Retry-After (the
    service noticed the fault and said so)."""
    refused = [a for a in _in_window(answers, start, end) if a.get("status") == 503 and a.get("retry_after")]
    if len(refused) < at_least:
        return [f"{len(refused)} requests were refused with 503 and Retry-After during the fault, fewer than"
                f" {at_least}: the fault went unnoticed"]
    return []


def members(seen: Sequence[str], expected: int, group: str) -> list[str]:
    """The consumer group has `expected` members (e.g. one fewer once a partitioned member timed out)."""
    if len(seen) != expected:
        return [f"group {group} has {len(seen)} members, not {expected}: {sorted(seen)}"]
    return []


def recommendations_answered(answers: Sequence[Mapping[str, Any]], removed: float) -> list[str]:
    """Each answer a 200 or a 503 with Retry-After (a moment with nothing listening is a restart, allowed);
    never another status or no answer; and a 200 again after the fault's removal."""
    violations = []
    for answer in answers:
        status = answer.get("status")
        if status is None:
            violations.append(f"no recommendation within the timeout at {answer.get('at')}")
        elif status == 503 and not answer.get("retry_after"):
            violations.append(f"a 503 without Retry-After at {answer.get('at')}")
        elif status not in (0, 200, 503):
            violations.append(f"a {status} at {answer.get('at')}: {str(answer.get('body', ''))[:200]}")
    if not any(a.get("status") == 200 and float(a.get("at", 0)) >= removed for a in answers):
        violations.append("no recommendation was answered after the fault: the recommender did not come back")
    return violations


def same_answers(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Each player's recommendations are what the model gave before the fault (version and items;
    whether they came from the cache does not matter)."""

    def picks(answer: Any) -> Any:
        return None if answer is None else (answer.get("model_version"), answer.get("items"))

    return [f"{player}: {picks(before[player])} before the fault, {picks(after.get(player))} after"
            for player in before if picks(after.get(player)) != picks(before[player])]
