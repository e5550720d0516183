"""Event validation on plain data: every type's contract, the limits, and nothing but InvalidEvent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamemetrics.events.schema import EVENT_TYPES
from gamemetrics.events.validation import InvalidEvent, Limits, decode_event, nesting_depth

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_event_bytes=32 * 1024, max_depth=8, max_late=timedelta(days=7), max_future=timedelta(minutes=10))

# The smallest valid properties of every event type; the test below fails if a type is added without them.
MINIMAL_PROPERTIES: dict[str, dict[str, Any]] = {
    "session_start": {},
    "session_end": {},
    "level_start": {"level": 3},
    "level_complete": {"level": "boss-1"},
    "level_fail": {"level": 0},
    "purchase": {"item_id": "gems_500", "price": 4.99, "currency": "EUR"},
    "item_acquired": {"item_id": "sword"},
    "item_used": {"item_id": "potion"},
    "achievement_unlocked": {"achievement_id": "first_blood"},
    "ad_impression": {},
    "custom": {},
    "identify": {},
}
REQUIRED = [(t, field) for t, props in MINIMAL_PROPERTIES.items() for field in props]


def event(event_type: str = "session_start", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": "player-1",
        "timestamp": NOW.isoformat(),
        "properties": dict(MINIMAL_PROPERTIES.get(event_type, {})),
    }
    if event_type == "custom":
        body["name"] = "chest_opened"
    body.update(fields)
    return body


def decode(body: dict[str, Any] | bytes, *, history: bool = False, limits: Limits = LIMITS) -> Any:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return decode_event(raw, limits=limits, now=NOW, allow_history=history)


def refusal(body: dict[str, Any] | bytes, **kwargs: Any) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(body, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- types and properties


def test_every_event_type_has_its_minimal_properties_listed() -> None:
    assert set(MINIMAL_PROPERTIES) == EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(MINIMAL_PROPERTIES))
def test_each_type_is_valid_with_its_required_properties(event_type: str) -> None:
    body = event(event_type, properties={**MINIMAL_PROPERTIES[event_type], "extra": {"kept": [1, 2]}})
    decoded = decode(body)
    assert decoded.event_type == event_type
    assert decoded.event_id == uuid.UUID(body["event_id"])
    # Fields the schema does not name are kept.
    assert msgspec.json.decode(decoded.properties)["extra"] == {"kept": [1, 2]}


@pytest.mark.parametrize(("event_type", "field"), REQUIRED)
def test_a_missing_required_property_is_named(event_type: str, field: str) -> None:
    properties = dict(MINIMAL_PROPERTIES[event_type])
    del properties[field]
    message = refusal(event(event_type, properties=properties))
    assert message.startswith(f"{event_type} properties:")
    assert f"`{field}`" in message


@pytest.mark.parametrize(
    ("event_type", "properties", "path"),
    [
        ("purchase", {"item_id": "x", "price": -1, "currency": "USD"}, "$.properties.price"),
        ("purchase", {"item_id": "x", "price": "free", "currency": "USD"}, "$.properties.price"),
        ("purchase", {"item_id": "x", "price": 1, "currency": "EURO"}, "$.properties.currency"),
        ("purchase", {"item_id": "x", "price": 1, "currency": "USD", "quantity": 0}, "$.properties.quantity"),
        ("purchase", {"item_id": "", "price": 1, "currency": "USD"}, "$.properties.item_id"),
        ("level_start", {"level": -1}, "$.properties.level"),
        ("level_start", {"level": True}, "$.properties.level"),
        ("session_end", {"duration_seconds": -5}, "$.properties.duration_seconds"),
        ("ad_impression", {"revenue_usd": -0.01}, "$.properties.revenue_usd"),
        ("achievement_unlocked", {"achievement_id": 7}, "$.properties.achievement_id"),
    ],
)
def test_a_wrong_property_names_its_path(event_type: str, properties: dict[str, Any], path: str) -> None:
    assert f"`{path}`" in refusal(event(event_type, properties=properties))


def test_numbers_sent_as_strings_are_taken() -> None:
    decoded = decode(event("purchase", properties={"item_id": "x", "price": "4.99", "currency": "usd"}))
    assert msgspec.json.decode(decoded.properties)["price"] == "4.99"  # kept as sent; enrichment reads it exactly


def test_unknown_type_lists_the_known_ones() -> None:
    message = refusal(event("level_up"))
    assert "unknown event_type 'level_up'" in message
    assert all(t in message for t in EVENT_TYPES)


def test_custom_needs_a_name() -> None:
    body = event("custom")
    del body["name"]
    assert refusal(body) == "a custom event needs a `name`"
    assert refusal(event("custom", name="")).endswith("`$.name`")
    assert decode(event("custom", name="chest_opened")).name == "chest_opened"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"event_id": "not-a-uuid"}, "$.event_id"),
        ({"player_id": ""}, "$.player_id"),
        ({"player_id": 42}, "$.player_id"),
        ({"player_id": "p" * 257}, "$.player_id"),
        ({"event_type": None}, "$.event_type"),
        ({"properties": [1, 2]}, "$.properties"),
        ({"context": {"platform": 3}}, "$.context.platform"),
        ({"context": {"country": "x" * 300}}, "$.context.country"),
    ],
)
def test_a_wrong_envelope_field_names_its_path(fields: dict[str, Any], path: str) -> None:
    assert f"`{path}`" in refusal(event(**fields))


@pytest.mark.parametrize("field", ["event_id", "event_type", "player_id", "timestamp"])
def test_envelope_fields_are_required(field: str) -> None:
    body = event()
    del body[field]
    assert f"`{field}`" in refusal(body)


# ---------------------------------------------------------------- time


def test_live_events_have_a_late_limit_and_history_goes_through_import() -> None:
    oldest = NOW - LIMITS.max_late
    assert decode(event(timestamp=oldest.isoformat()))
    message = refusal(event(timestamp=(oldest - timedelta(seconds=1)).isoformat()))
    assert "more than 7 days in the past" in message and "/v1/import" in message
    assert decode(event(timestamp="2019-03-01T08:00:00Z"), history=True).timestamp.year == 2019


@pytest.mark.parametrize("history", [False, True])
def test_future_limit_holds_for_live_and_import(history: bool) -> None:
    furthest = NOW + LIMITS.max_future
    assert decode(event(timestamp=furthest.isoformat()), history=history)
    message = refusal(event(timestamp=(furthest + timedelta(seconds=1)).isoformat()), history=history)
    assert "more than 10 minutes in the future" in message


def test_offsets_are_honoured_and_naive_times_refused() -> None:
    # 13:05 at +01:00 is 12:05 UTC: inside the 10-minute future window.
    assert decode(event(timestamp="2026-11-25T13:05:00+01:00")).timestamp == NOW + timedelta(minutes=5)
    assert "timezone" in refusal(event(timestamp="2026-11-25T12:00:00"))
    assert "`$.timestamp`" in refusal(event(timestamp="yesterday"))


def test_a_time_that_is_year_zero_in_utc_is_refused() -> None:
    # Representable as sent, but not in UTC: it could be stored and never read back.
    assert "timestamp" in refusal(event(timestamp="0001-01-01T00:00:00+14:00"), history=True)


# ---------------------------------------------------------------- size, depth, encoding


def test_size_limit_counts_the_event_bytes() -> None:
    body = event("custom", properties={"pad": ""})
    room = LIMITS.max_event_bytes - len(msgspec.json.encode(body))
    body["properties"]["pad"] = "x" * room
    assert len(msgspec.json.encode(body)) == LIMITS.max_event_bytes
    assert decode(body)
    body["properties"]["pad"] += "x"
    assert refusal(body) == f"event is {LIMITS.max_event_bytes + 1} bytes; the limit is {LIMITS.max_event_bytes}"


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("where", ["properties", "context"])
def test_depth_limit(where: str) -> None:
    # nested(7) is seven containers; inside the object that holds it, eight levels: just at the limit.
    assert nesting_depth({"a": nested(LIMITS.max_depth - 1)}) == LIMITS.max_depth
    assert decode(event("custom", **{where: {"a": nested(LIMITS.max_depth - 1)}}))
    message = refusal(event("custom", **{where: {"a": nested(LIMITS.max_depth)}}))
    assert "nested" in message and str(LIMITS.max_depth) in message


def test_very_deep_nesting_is_a_clear_refusal_not_a_crash() -> None:
    # Within the byte limit, far past the decoder's recursion limit.
    raw = b'{"event_id": "%s", "properties": ' % str(uuid.uuid4()).encode() + b'{"a":' * 30_000 + b"1" + b"}" * 30_001
    wide = Limits(max_event_bytes=1 << 20, max_depth=8, max_late=LIMITS.max_late, max_future=LIMITS.max_future)
    message = refusal(raw, limits=wide)
    assert "not valid JSON" in message


def test_nesting_depth_counts_levels() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({}) == 1
    assert nesting_depth({"a": 1, "b": "x"}) == 1
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    assert nesting_depth([[[[]]], []]) == 4


def test_non_utf8_is_refused() -> None:
    raw = msgspec.json.encode(event(player_id="PLAYER")).replace(b"PLAYER", b"pl\xff\xfeer")
    assert "not valid JSON" in refusal(raw)


def test_a_lone_surrogate_is_refused() -> None:
    raw = msgspec.json.encode(event(player_id="PLAYER")).replace(b"PLAYER", b"\\ud800")
    assert refusal(raw)


@pytest.mark.parametrize(
    "fields",
    [
        {"player_id": "pl\x00yer"},
        {"session_id": "s\x00"},
        {"properties": {"k\x00": 1}},
        {"properties": {"k": ["ok", {"deeper": "\x00"}]}},
        {"context": {"device": "\x00"}},
    ],
)
def test_nul_characters_are_refused(fields: dict[str, Any]) -> None:
    # PostgreSQL text and jsonb cannot hold NUL: letting one through would stall the processor.
    assert "NUL" in refusal(event("custom", **fields))


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    decoded = decode(event("custom", properties={"path": "C:\\u0000"}))
    assert msgspec.json.decode(decoded.properties)["path"] == "C:\\u0000"


# ---------------------------------------------------------------- only ever InvalidEvent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
timestamps = st.one_of(
    st.builds(lambda at, tz: at.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-25T12:00:00"]),
    st.text(max_size=30),
)
event_like = st.fixed_dictionaries(
    {
        "event_id": st.one_of(st.uuids().map(str), json_values),
        "event_type": st.one_of(st.sampled_from(sorted(EVENT_TYPES)), json_values),
        "player_id": st.one_of(st.text(max_size=300), json_values),
        "timestamp": st.one_of(timestamps, json_values),
    },
    optional={
        "session_id": st.one_of(st.text(max_size=10), json_values),
        "name": st.one_of(st.text(max_size=10), json_values),
        "properties": st.one_of(
            st.dictionaries(
                st.sampled_from(["item_id", "price", "currency", "quantity", "level", "score", "duration_seconds",
                                 "achievement_id", "revenue_usd", "x"]),
                st.one_of(json_values, st.sampled_from(["inf", "nan", "1e400", "3.0", "USD", "-0"])),
            ),
            json_values,
        ),
        "context": st.one_of(st.dictionaries(st.sampled_from(["platform", "os", "country", "x"]), json_values),
                             json_values),
    },
)


def only_invalid_event(raw: bytes, *, history: bool) -> None:
    try:
        decode_event(raw, limits=LIMITS, now=NOW, allow_history=history)
    except InvalidEvent as exc:
        assert str(exc), "a refusal must say why"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), history=st.booleans())
def test_arbitrary_bytes_only_ever_raise_invalid_event(raw: bytes, history: bool) -> None:
    only_invalid_event(raw, history=history)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, history=st.booleans())
def test_arbitrary_json_only_ever_raises_invalid_event(value: Any, history: bool) -> None:
    only_invalid_event(json.dumps(value).encode(), history=history)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=event_like, history=st.booleans())
def test_event_shaped_json_only_ever_raises_invalid_event(body: dict[str, Any], history: bool) -> None:
    only_invalid_event(json.dumps(body).encode(), history=history)
