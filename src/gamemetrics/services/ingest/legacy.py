"""The original GameMetrics ingestion contract (`POST /api/v1/events`), mapped onto native events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from gamemetrics.services.ingest.body import decode_json_object
from gamemetrics.services.ingest.errors import IngestError

_encoder = msgspec.json.Encoder()

# Original type → (native type, custom name). Rounds of play have no native type, so they stay
# custom events under their original names, with `data` (score, duration...) as properties.
LEGACY_TYPES: dict[str, tuple[str, str | None]] = {
    "login": ("session_start", None),
    "logout": ("session_end", None),
    "level_up": ("level_complete", None),
    "purchase": ("purchase", None),
    "achievement": ("achievement_unlocked", None),
    "game_start": ("custom", "game_start"),
    "game_end": ("custom", "game_end"),
    "user_action": ("custom", "user_action"),
}


def convert(body: bytes) -> tuple[bytes, uuid.UUID]:
    """The native event JSON of one original-format event, and the game it names."""
    payload = decode_json_object(body)
    for field in ("player_id", "game_id", "event_type"):
        if not payload.get(field):
            raise IngestError(400, f"`{field}` is required")
    try:
        game_id = uuid.UUID(str(payload["game_id"]))
    except ValueError:
        raise IngestError(400, f"game_id {payload['game_id']!r} is not a UUID") from None
    if not isinstance(payload["player_id"], str | int) or isinstance(payload["player_id"], bool):
        raise IngestError(400, "`player_id` must be a string")
    legacy_type = payload["event_type"]
    if not isinstance(legacy_type, str) or legacy_type not in LEGACY_TYPES:
        raise IngestError(400, f"unknown event_type {legacy_type!r}; expected one of {', '.join(LEGACY_TYPES)}")
    event_type, name = LEGACY_TYPES[legacy_type]
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise IngestError(400, "`data` must be an object")
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": str(payload["player_id"]),
        "timestamp": _timestamp(payload.get("timestamp")),
        "properties": _properties(legacy_type, data),
    }
    if name:
        event["name"] = name
    return _encoder.encode(event), game_id


def _properties(legacy_type: str, data: dict[str, Any]) -> dict[str, Any]:
    properties = dict(data)
    if legacy_type == "purchase":
        if "price" not in properties and "amount" in properties:
            properties["price"] = properties["amount"]
        properties.setdefault("currency", "USD")
    elif legacy_type == "achievement" and "achievement_id" not in properties:
        properties["achievement_id"] = str(properties.get("achievement") or properties.get("name") or "unknown")
    elif legacy_type == "level_up" and "level" not in properties:
        properties["level"] = properties.get("new_level", 0)
    return properties


def _timestamp(value: Any) -> str:
    """Original clients sent naive ISO times meaning UTC, or nothing (meaning now)."""
    if value is None:
        return datetime.now(UTC).isoformat()
    if not isinstance(value, str):
        raise IngestError(400, "`timestamp` must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(400, f"timestamp {value!r} is not ISO 8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
