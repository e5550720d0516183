"""Segment's HTTP Tracking API (`/v1/batch`, `/v1/track`, `/v1/identify`) mapped onto native events.

Segment and RudderStack SDKs point here with one setting: the write key travels as the Basic user
name, `messageId` becomes the event id, `userId` (or `anonymousId`) the player.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from gamemetrics.services.ingest.accept import Rejection
from gamemetrics.services.ingest.body import decode_json_object
from gamemetrics.services.ingest.errors import IngestError

# A messageId that is not a UUID still needs a stable event id, so retries stay duplicates.
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c2a52-64a4-4d0e-9d55-3b1b4f0c9a51")
_encoder = msgspec.json.Encoder()

# Segment spec and common game-event names → native types. Anything else becomes `custom`.
_TRACK_TYPES = {
    "order completed": "purchase",
    "product purchased": "purchase",
    "in app purchase": "purchase",
    "application opened": "session_start",
    "session started": "session_start",
    "application backgrounded": "session_end",
    "session ended": "session_end",
    "level started": "level_start",
    "level completed": "level_complete",
    "level failed": "level_fail",
    "item acquired": "item_acquired",
    "item used": "item_used",
    "achievement unlocked": "achievement_unlocked",
    "ad impression": "ad_impression",
}
_NATIVE = {
    "session_start", "session_end", "level_start", "level_complete", "level_fail", "purchase",
    "item_acquired", "item_used", "achievement_unlocked", "ad_impression",
}


class SegmentMessageError(ValueError):
    """A Segment message that cannot be mapped."""


def convert(body: bytes, kind: str) -> tuple[list[tuple[int, bytes]], list[Rejection]]:
    """Native event JSON for each message of a Segment request, and the messages refused."""
    payload = decode_json_object(body)
    if kind == "batch":
        messages = payload.get("batch")
        if not isinstance(messages, list):
            raise IngestError(400, 'body must be {"batch": [...]}')
    else:
        messages = [{**payload, "type": payload.get("type", kind)}]
    try:
        sent_at = _time(payload.get("sentAt"))
    except SegmentMessageError as exc:
        raise IngestError(400, f"the batch's sentAt: {exc}") from None
    items: list[tuple[int, bytes]] = []
    rejected: list[Rejection] = []
    for index, message in enumerate(messages):
        try:
            items.append((index, _encoder.encode(to_native(message, sent_at))))
        except SegmentMessageError as exc:
            rejected.append(Rejection(index, str(exc)))
    return items, rejected


def to_native(message: Any, batch_sent_at: datetime | None = None) -> dict[str, Any]:
    """One Segment message as a native event dict (validated afterwards like any other)."""
    if not isinstance(message, dict):
        raise SegmentMessageError("each message must be a JSON object")
    kind = message.get("type")
    player = message.get("userId") or message.get("anonymousId")
    if not isinstance(player, str | int) or player == "":
        raise SegmentMessageError("a message needs userId or anonymousId")
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise SegmentMessageError("a message needs a messageId")
    timestamp = _corrected_time(message, batch_sent_at)
    context = _object(message, "context")
    event: dict[str, Any] = {
        "event_id": str(_event_id(message_id)),
        "player_id": str(player),
        "timestamp": timestamp.isoformat(),
        "context": _context(context),
    }
    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name:
            raise SegmentMessageError("a track message needs an `event` name")
        properties = _object(message, "properties")
        event_type = _track_type(name)
        event["event_type"] = event_type
        event["properties"] = _purchase(properties) if event_type == "purchase" else properties
        if event_type == "custom":
            event["name"] = name
    elif kind == "identify":
        traits = message.get("traits")
        if traits is None:
            traits = context.get("traits", {})
        if not isinstance(traits, dict):
            raise SegmentMessageError("identify traits must be an object")
        event["event_type"] = "identify"
        event["properties"] = traits
    else:
        raise SegmentMessageError(f"message type {kind!r} is not supported; use track or identify")
    raw_properties = message.get("properties")
    session_id = context.get("sessionId") or (
        raw_properties.get("session_id") if isinstance(raw_properties, dict) else None
    )
    if isinstance(session_id, str | int) and str(session_id):
        event["session_id"] = str(session_id)
    return event


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """`parent[key]` when it is a JSON object, else an empty one."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _track_type(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in _NATIVE:
        return lowered
    return _TRACK_TYPES.get(re.sub(r"[\s_]+", " ", lowered), "custom")


def _purchase(properties: dict[str, Any]) -> dict[str, Any]:
    """Segment's Order Completed (revenue/total, currency, products) as a native purchase."""
    mapped = dict(properties)
    products = properties.get("products") if isinstance(properties.get("products"), list) else []
    first = products[0] if products and isinstance(products[0], dict) else {}
    if "price" not in mapped:
        for field in ("revenue", "total", "value"):
            if field in properties:
                mapped["price"] = properties[field]
                break
        else:
            if "price" in first:
                mapped["price"] = first["price"]
    mapped.setdefault("item_id", properties.get("product_id") or first.get("product_id")
                      or properties.get("order_id") or properties.get("sku"))
    mapped.setdefault("currency", "USD")
    if mapped.get("item_id") is None:
        mapped.pop("item_id")
    return mapped


def _context(context: dict[str, Any]) -> dict[str, Any]:
    os_info = _object(context, "os")
    device = _object(context, "device")
    app = _object(context, "app")
    location = _object(context, "location")
    native = {
        "platform": device.get("type") or os_info.get("name"),
        "os": " ".join(str(v) for v in (os_info.get("name"), os_info.get("version")) if v) or None,
        "app_version": app.get("version"),
        "country": location.get("country"),
        "device": device.get("model"),
        "locale": context.get("locale"),
        "library": context.get("library"),
    }
    return {k: (str(v) if k != "library" else v) for k, v in native.items() if v not in (None, "")}


def _event_id(message_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(message_id)
    except ValueError:
        return uuid.uuid5(_MESSAGE_ID_NAMESPACE, message_id)


def _corrected_time(message: dict[str, Any], batch_sent_at: datetime | None) -> datetime:
    """Segment's clock-skew correction: timestamp + (server now − device sentAt)."""
    timestamp = _time(message.get("timestamp") or message.get("originalTimestamp"))
    now = datetime.now(UTC)
    if timestamp is None:
        return now
    sent_at = _time(message.get("sentAt")) or batch_sent_at
    if sent_at is not None:
        try:
            timestamp = timestamp + (now - sent_at)
        except OverflowError:  # a device clock centuries off pushes the corrected time off the calendar
            raise SegmentMessageError(
                f"timestamp {timestamp.isoformat()} corrected by sentAt {sent_at.isoformat()} is out of range"
            ) from None
    return timestamp


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SegmentMessageError(f"timestamp {value!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
