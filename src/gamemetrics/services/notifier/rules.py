"""Notification rules: a trigger on the processed-event stream (an event type, conditions on its
properties, optionally N such events within one session), a template, channels and a cooldown per
player. Parsing and matching are pure; the rule worker keeps counts and cooldowns in the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gamemetrics.events.schema import EVENT_TYPES
from gamemetrics.services.notifier.templates import CHANNEL_FIELDS, MAX_NAME

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "exists")
ENVELOPE_FIELDS = ("is_new_player", "platform", "os", "country", "app_version", "source", "name", "revenue_usd")
"""Fields of the event itself a condition can name with a `$` (`"$is_new_player": true`)."""
_MISSING = object()


class RuleInvalid(ValueError):
    """A rule that cannot be saved; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    operator: str
    value: Any

    def holds(self, event: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
        found = event.get(self.path[1:], _MISSING) if self.path.startswith("$") else _lookup(properties, self.path)
        if self.operator == "exists":
            return (found is not _MISSING and found is not None) == bool(self.value)
        if found is _MISSING:
            return False
        if self.operator == "eq":
            return bool(found == self.value)
        if self.operator == "ne":
            return bool(found != self.value)
        if self.operator == "in":
            return found in self.value
        try:
            number, bound = float(found), float(self.value)
        except (TypeError, ValueError):
            return False
        return {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}[
            self.operator]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    event_type: str
    template: str
    conditions: tuple[Condition, ...] = ()
    count: int = 1
    per: tuple[str, ...] = ()
    """With `count`: the properties that must agree among the counted events (`["level"]`)."""
    channels: list[str] | str = "auto"
    cooldown_seconds: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    inactive_days: float | None = None
    """A schedule instead of an event: players whose last event is older than this."""

    def matches(self, event_type: str, event: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
        return event_type == self.event_type and all(c.holds(event, properties) for c in self.conditions)

    def bucket(self, session_id: str | None, properties: Mapping[str, Any]) -> str:
        """Where a counted event counts: its session and the values of `per`."""
        values = [repr(_lookup(properties, p)) if _lookup(properties, p) is not _MISSING else "-" for p in self.per]
        return "|".join([session_id or "-", *values])

    def json(self) -> dict[str, Any]:
        trigger: dict[str, Any] = {"event_type": self.event_type,
                                   "where": {c.path: {c.operator: c.value} for c in self.conditions}}
        if self.inactive_days is not None:
            trigger = {"schedule": {"inactive_days": self.inactive_days}}
        elif self.count > 1:
            trigger |= {"count": self.count, "within": "session", "per": list(self.per)}
        return {"name": self.name, "trigger": trigger, "template": self.template, "channels": self.channels,
                "cooldown_seconds": self.cooldown_seconds, "data": self.data, "enabled": self.enabled}


def _lookup(properties: Mapping[str, Any], path: str) -> Any:
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _conditions(where: Any) -> tuple[Condition, ...]:
    if not isinstance(where, dict) or len(where) > 20:
        raise RuleInvalid('trigger.where is an object of at most 20 conditions: {"price": {"gte": 10}}')
    found: list[Condition] = []
    for path, test in where.items():
        if not isinstance(path, str) or not path or len(path) > 128:
            raise RuleInvalid("a condition names a property path of 1-128 characters")
        if path.startswith("$") and path[1:] not in ENVELOPE_FIELDS:
            raise RuleInvalid(f"{path}: the event fields a condition can name are ${', $'.join(ENVELOPE_FIELDS)}")
        if not isinstance(test, dict):
            test = {"eq": test}
        if len(test) != 1 or next(iter(test)) not in OPERATORS:
            raise RuleInvalid(f"trigger.where.{path} is a value or one of {', '.join(OPERATORS)}: {{\"gte\": 3}}")
        operator, value = next(iter(test.items()))
        if operator == "in" and not isinstance(value, list):
            raise RuleInvalid(f"trigger.where.{path}.in is a list")
        if operator in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RuleInvalid(f"trigger.where.{path}.{operator} is a number")
        found.append(Condition(path, operator, value))
    return tuple(found)


def parse_rule(name: str, body: Any) -> Rule:
    """The rule `body` describes; RuleInvalid if not (the template's existence is checked by the caller)."""
    if not 1 <= len(name) <= MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise RuleInvalid(f"a rule name has 1-{MAX_NAME} letters, digits, '-', '_' or '.'")
    if not isinstance(body, dict) or set(body) - {"trigger", "template", "channels", "cooldown_seconds", "data",
                                                  "enabled"}:
        raise RuleInvalid('send {"trigger": {"event_type": ..., "where": {...}}, "template": ..., "channels": ...,'
                          ' "cooldown_seconds": ...}')
    trigger = body.get("trigger")
    if isinstance(trigger, dict) and set(trigger) == {"schedule"}:
        return _scheduled(name, body, trigger["schedule"])
    if not isinstance(trigger, dict) or set(trigger) - {"event_type", "where", "count", "within", "per"}:
        raise RuleInvalid('trigger is {"event_type": ..., "where": {...}, "count": n, "within": "session",'
                          ' "per": [...]} or {"schedule": {"inactive_days": n}}')
    event_type = trigger.get("event_type")
    if event_type not in EVENT_TYPES:
        raise RuleInvalid(f"unknown event type {event_type!r}; choose from {', '.join(sorted(EVENT_TYPES))}")
    count, per = trigger.get("count", 1), trigger.get("per", [])
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise RuleInvalid("trigger.count is 1-1000 events")
    if trigger.get("within", "session") != "session":
        raise RuleInvalid('trigger.within is "session": counted events are those of one session')
    if not isinstance(per, list) or not all(isinstance(p, str) and p for p in per) or len(per) > 5:
        raise RuleInvalid("trigger.per is a list of at most 5 property paths")
    template, channels, cooldown, data, enabled = _delivery(body)
    return Rule(name, event_type, template, _conditions(trigger.get("where", {})), count, tuple(per), channels,
                cooldown, data, enabled)


def _scheduled(name: str, body: dict[str, Any], schedule: Any) -> Rule:
    days = schedule.get("inactive_days") if isinstance(schedule, dict) and set(schedule) == {"inactive_days"} \
        else None
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
        raise RuleInvalid('trigger.schedule is {"inactive_days": n}: players without events for n days (up to 3650)')
    template, channels, cooldown, data, enabled = _delivery(body)
    return Rule(name, "", template, channels=channels, cooldown_seconds=cooldown, data=data, enabled=enabled,
                inactive_days=float(days))


def _delivery(body: dict[str, Any]) -> tuple[str, list[str] | str, int, dict[str, Any], bool]:
    """The template, channels, cooldown, data and enabled flag of a rule's body, checked."""
    template, channels = body.get("template"), body.get("channels", "auto")
    if not isinstance(template, str) or not template:
        raise RuleInvalid("template names a notification template of the game")
    if channels != "auto" and (not isinstance(channels, list) or not channels
                               or not all(c in CHANNEL_FIELDS for c in channels)):
        raise RuleInvalid(f'channels is "auto" or a list of {", ".join(CHANNEL_FIELDS)}')
    cooldown, data, enabled = body.get("cooldown_seconds", 0), body.get("data", {}), body.get("enabled", True)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or not 0 <= cooldown <= 366 * 86400:
        raise RuleInvalid("cooldown_seconds is 0 to a year, in seconds")
    if not isinstance(data, dict) or not isinstance(enabled, bool):
        raise RuleInvalid("data is an object of template variables; enabled is true or false")
    return template, channels, cooldown, data, enabled


def stored_rule(name: str, body: Mapping[str, Any]) -> Rule:
    return parse_rule(name, dict(body))


def event_fields(event: Any) -> dict[str, Any]:
    """The envelope fields of a processed event that conditions can name."""
    return {name: getattr(event, name, None) for name in ENVELOPE_FIELDS}
