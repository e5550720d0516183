"""Segment's Tracking API messages mapped onto native events, on plain data."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamemetrics.events.enrich import revenue_usd
from gamemetrics.events.validation import Limits, decode_event
from gamemetrics.services.ingest.errors import IngestError
from gamemetrics.services.ingest.segment import SegmentMessageError, convert, to_native
from gamemetrics.settings import DEFAULT_FX_RATES_USD

LIMITS = Limits(max_event_bytes=32 * 1024, max_depth=8, max_late=timedelta(days=7), max_future=timedelta(minutes=10))
MESSAGE_ID = "8f0a4c1e-3b7d-4e5f-9a1b-2c3d4e5f6a7b"


def track(event: str = "Chest Opened", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": event, "userId": "player-42", "messageId": MESSAGE_ID}
    message.update(fields)
    return message


def at(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def valid_native(event: dict[str, Any]) -> Any:
    """The mapped event passes the native validation, as ingest requires next."""
    return decode_event(msgspec.json.encode(event), limits=LIMITS, now=datetime.now(UTC), allow_history=False)


# ---------------------------------------------------------------- track and identify


def test_track_becomes_a_custom_event_with_its_name_properties_and_context() -> None:
    event = to_native(track(
        properties={"chest": "gold", "session_id": "from-properties"},
        context={
            "device": {"type": "ios", "model": "iPhone15,2"}, "os": {"name": "iOS", "version": "17.2"},
            "app": {"version": "1.4.2"}, "location": {"country": "DE"}, "locale": "de-DE",
            "library": {"name": "analytics-ios", "version": "4.1"}, "sessionId": 1700000000,
        },
    ))
    assert event["event_type"] == "custom" and event["name"] == "Chest Opened"
    assert event["event_id"] == MESSAGE_ID and event["player_id"] == "player-42"
    assert event["properties"] == {"chest": "gold", "session_id": "from-properties"}
    assert event["context"] == {
        "platform": "ios", "os": "iOS 17.2", "app_version": "1.4.2", "country": "DE", "device": "iPhone15,2",
        "locale": "de-DE", "library": {"name": "analytics-ios", "version": "4.1"},
    }
    assert event["session_id"] == "1700000000"  # context.sessionId wins over properties.session_id
    assert valid_native(event).name == "Chest Opened"


def test_properties_session_id_is_used_when_the_context_has_none() -> None:
    assert to_native(track(properties={"session_id": "s-9"}))["session_id"] == "s-9"
    assert "session_id" not in to_native(track(properties=["not", "an", "object"]))


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("Level Completed", "level_complete"), ("level_completed", "level_complete"),
        ("Application Opened", "session_start"), ("Application Backgrounded", "session_end"),
        ("Achievement Unlocked", "achievement_unlocked"), ("Ad Impression", "ad_impression"),
        ("item_acquired", "item_acquired"), ("Purchase", "purchase"), ("Boss Defeated", "custom"),
    ],
)
def test_track_names_map_onto_native_types(name: str, event_type: str) -> None:
    event = to_native(track(name))
    assert event["event_type"] == event_type
    assert ("name" in event) == (event_type == "custom")


def test_anonymous_and_numeric_ids_become_player_ids() -> None:
    assert to_native(track(userId=None, anonymousId="anon-7"))["player_id"] == "anon-7"
    assert to_native(track(userId=1234))["player_id"] == "1234"


def test_identify_traits_become_profile_properties() -> None:
    message = {"type": "identify", "userId": "p", "messageId": MESSAGE_ID, "traits": {"plan": "vip", "level": 12}}
    event = to_native(message)
    assert event["event_type"] == "identify" and event["properties"] == {"plan": "vip", "level": 12}
    assert valid_native(event).event_type == "identify"
    from_context = {"type": "identify", "userId": "p", "messageId": MESSAGE_ID, "context": {"traits": {"a": 1}}}
    assert to_native(from_context)["properties"] == {"a": 1}


# ---------------------------------------------------------------- purchases


def test_order_completed_is_a_purchase_priced_by_its_revenue() -> None:
    event = to_native(track("Order Completed", properties={
        "order_id": "o-1", "revenue": 9.99, "currency": "EUR",
        "products": [{"product_id": "gems_500", "price": 4.99}, {"product_id": "gems_100", "price": 5.0}],
    }))
    assert event["event_type"] == "purchase"
    assert event["properties"]["price"] == 9.99 and event["properties"]["item_id"] == "gems_500"
    assert revenue_usd(valid_native(event), DEFAULT_FX_RATES_USD) == Decimal("10.789200")


def test_order_completed_falls_back_to_total_then_the_first_product() -> None:
    by_total = to_native(track("Order Completed", properties={"total": 3, "order_id": "o-2"}))["properties"]
    assert (by_total["price"], by_total["item_id"], by_total["currency"]) == (3, "o-2", "USD")
    by_product = to_native(track("order_completed", properties={"products": [{"product_id": "p", "price": 2}]}))
    assert by_product["properties"]["price"] == 2 and by_product["properties"]["item_id"] == "p"


def test_an_order_without_an_item_is_left_for_validation_to_refuse() -> None:
    event = to_native(track("Order Completed", properties={"revenue": 1}))
    assert "item_id" not in event["properties"]
    with pytest.raises(Exception, match="item_id"):
        valid_native(event)


# ---------------------------------------------------------------- ids


def test_a_uuid_message_id_is_the_event_id() -> None:
    assert to_native(track(messageId=MESSAGE_ID.upper()))["event_id"] == MESSAGE_ID


def test_a_non_uuid_message_id_gets_a_stable_uuid5() -> None:
    first = to_native(track(messageId="ajs-next-1700000000000-abc"))["event_id"]
    again = to_native(track(messageId="ajs-next-1700000000000-abc", event="Other"))["event_id"]
    other = to_native(track(messageId="ajs-next-1700000000000-abd"))["event_id"]
    assert first == again != other  # a retried message is the same event, whatever else changed
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"userId": None}, "a message needs userId or anonymousId"),
        ({"userId": ""}, "a message needs userId or anonymousId"),
        ({"userId": ["p"]}, "a message needs userId or anonymousId"),
        ({"messageId": None}, "a message needs a messageId"),
        ({"messageId": ""}, "a message needs a messageId"),
        ({"messageId": 17}, "a message needs a messageId"),
        ({"event": ""}, "a track message needs an `event` name"),
        ({"type": "page"}, "message type 'page' is not supported; use track or identify"),
    ],
)
def test_unmappable_messages_are_refused_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SegmentMessageError) as info:
        to_native(track(**change))
    assert str(info.value) == message


def test_identify_traits_must_be_an_object() -> None:
    with pytest.raises(SegmentMessageError, match="traits must be an object"):
        to_native({"type": "identify", "userId": "p", "messageId": MESSAGE_ID, "traits": ["vip"]})


# ---------------------------------------------------------------- time


def test_clock_skew_is_corrected_by_sent_at() -> None:
    # The device clock runs an hour fast: it stamped the event a minute before sending it.
    ahead = timedelta(hours=1)
    before = datetime.now(UTC)
    event = to_native(track(timestamp=at(ahead - timedelta(minutes=1)), sentAt=at(ahead)))
    after = datetime.now(UTC)
    corrected = datetime.fromisoformat(event["timestamp"])
    assert before - timedelta(minutes=1, seconds=1) <= corrected <= after - timedelta(minutes=1) + timedelta(seconds=1)


def test_the_message_sent_at_wins_over_the_batch_sent_at() -> None:
    sent = datetime.now(UTC) - timedelta(days=1)
    message = track(timestamp=sent.isoformat(), sentAt=sent.isoformat())
    batch_sent_at = datetime.now(UTC) + timedelta(days=30)
    corrected = datetime.fromisoformat(to_native(message, batch_sent_at)["timestamp"])
    assert abs(corrected - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_batch_sent_at_corrects_messages_without_their_own() -> None:
    device_now = datetime.now(UTC) - timedelta(hours=3)  # a clock three hours slow
    message = track(originalTimestamp=(device_now - timedelta(seconds=30)).isoformat())
    corrected = datetime.fromisoformat(to_native(message, device_now)["timestamp"])
    assert abs(corrected - (datetime.now(UTC) - timedelta(seconds=30))) < timedelta(minutes=1)


def test_without_sent_at_the_timestamp_is_kept_and_without_one_it_is_now() -> None:
    assert to_native(track(timestamp="2026-11-25T12:00:00Z"))["timestamp"] == "2026-11-25T12:00:00+00:00"
    assert to_native(track(timestamp="2026-11-25T12:00:00"))["timestamp"] == "2026-11-25T12:00:00+00:00"
    stamped = datetime.fromisoformat(to_native(track())["timestamp"])
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestamp": "last tuesday"}, "is not RFC 3339"),
        ({"timestamp": "9999-12-31T00:00:00Z", "sentAt": "0001-01-01T00:00:00Z"}, "out of range"),
    ],
)
def test_unreadable_times_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SegmentMessageError, match=message):
        to_native(track(**change))


# ---------------------------------------------------------------- whole requests


def test_a_batch_maps_the_good_messages_and_names_the_bad_by_index() -> None:
    body = {"batch": [track(), track(userId=None), "junk", {**track(), "type": "identify", "traits": {}}],
            "sentAt": at()}
    items, rejected = convert(json.dumps(body).encode(), "batch")
    assert [index for index, _ in items] == [0, 3]
    assert [(r.index, r.error) for r in rejected] == [
        (1, "a message needs userId or anonymousId"), (2, "each message must be a JSON object"),
    ]
    assert json.loads(items[1][1])["event_type"] == "identify"


def test_single_message_routes_take_their_type_from_the_path() -> None:
    message = track()
    del message["type"]
    items, rejected = convert(json.dumps(message).encode(), "track")
    assert rejected == [] and json.loads(items[0][1])["name"] == "Chest Opened"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[]", "body must be a JSON object"),
        (b'{"batch": {}}', 'body must be {"batch": [...]}'),
        (b'{"batch": [], "sentAt": "soon"}', "sentAt"),
    ],
)
def test_unreadable_requests_are_a_400(body: bytes, message: str) -> None:
    with pytest.raises(IngestError) as info:
        convert(body, "batch")
    assert info.value.status == 400 and message in info.value.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
times = st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=12), json_values)
messages = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["track", "identify", "page"]), json_values)},
    optional={
        "userId": st.one_of(st.text(max_size=5), json_values), "anonymousId": json_values,
        "messageId": st.one_of(st.text(max_size=8), json_values), "event": st.one_of(st.text(max_size=8), json_values),
        "properties": json_values, "traits": json_values, "timestamp": times, "originalTimestamp": times,
        "sentAt": times, "context": st.one_of(
            st.fixed_dictionaries({}, optional={k: json_values for k in ("device", "os", "app", "location", "traits",
                                                                         "sessionId", "locale")}),
            json_values,
        ),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.one_of(messages, json_values), max_size=4), sent_at=st.one_of(st.none(), times))
def test_any_request_maps_or_is_refused_never_crashes(batch: list[Any], sent_at: Any) -> None:
    body = {"batch": batch} if sent_at is None else {"batch": batch, "sentAt": sent_at}
    try:
        items, rejected = convert(json.dumps(body).encode(), "batch")
    except IngestError as exc:
        assert exc.status == 400
        return
    assert sorted([i for i, _ in items] + [r.index for r in rejected]) == list(range(len(batch)))
