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
