"""A funnel as an operator types it: one step per line, `event` or `event property=value`."""

from __future__ import annotations

from dataclasses import dataclass

MAX_STEPS = 20


class BadFunnel(ValueError):
    """A funnel the page cannot ask for; the message says which line and why."""


@dataclass(frozen=True, slots=True)
class Step:
    event: str
    property: str | None = None
    equals: str | None = None

    def as_input(self) -> dict[str, str]:
        """The step as the analytics API's `FunnelStepInput`."""
        step = {"event": self.event}
        if self.property is not None and self.equals is not None:
            step |= {"property": self.property, "equals": self.equals}
        return step


def parse_steps(text: str) -> list[Step]:
    """The steps of `text`, e.g. "session_start", "level_complete level=3", "purchase"."""
    steps = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        event, _, condition = line.partition(" ")
        condition = condition.strip()
        if len(event) > 200:
            raise BadFunnel(f"line {number}: an event name has at most 200 characters")
        if not condition:
            steps.append(Step(event))
            continue
        prop, equals, value = condition.partition("=")
        if not equals or not prop.strip() or not value.strip():
            raise BadFunnel(f"line {number}: write `event` or `event property=value`, not {line!r}")
        steps.append(Step(event, prop.strip(), value.strip()))
    if not steps:
        raise BadFunnel("a funnel needs at least one step: one event per line")
    if len(steps) > MAX_STEPS:
        raise BadFunnel(f"a funnel has at most {MAX_STEPS} steps, not {len(steps)}")
    return steps
