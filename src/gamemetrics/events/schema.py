"""The native event model and the properties each event type must carry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
PlayerId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
# Longer than a year is a broken clock, and playtime rollups sum durations into bigint seconds:
# an unbounded (or "inf") duration would make the processor's whole batch fail to store.
Duration = Annotated[float, msgspec.Meta(ge=0, le=366 * 24 * 3600)]


class Context(msgspec.Struct, omit_defaults=True):
    """The context fields the platform reads; an event's context may carry more, kept as sent."""

    platform: ShortText | None = None
    os: ShortText | None = None
    app_version: ShortText | None = None
    country: ShortText | None = None
    device: ShortText | None = None
    locale: ShortText | None = None


EMPTY_OBJECT = msgspec.Raw(b"{}")


class Event(msgspec.Struct, omit_defaults=True):
    """One player event as games send it to `POST /v1/events`.

    `properties` and `context` stay the JSON text the game sent: validation reads each straight into
    the typed struct that checks it, and the store keeps the text, so neither is built as a dict of
    Python objects and then encoded again.
    """

    event_id: uuid.UUID
    event_type: ShortText
    player_id: PlayerId
    timestamp: AwareTime
    session_id: ShortText | None = None
    name: ShortText | None = None
    properties: msgspec.Raw = EMPTY_OBJECT
    context: msgspec.Raw = EMPTY_OBJECT


class EventBatch(msgspec.Struct):
    """The body of `POST /v1/events` and `POST /v1/import`; items are checked one by one."""

    events: list[msgspec.Raw]


# Per-type properties. Fields not named here are allowed and kept.
class PurchaseProperties(msgspec.Struct):
    item_id: ShortText
    price: NonNegative
    currency: Currency
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1


class LevelProperties(msgspec.Struct):
    level: Annotated[int, msgspec.Meta(ge=0)] | ShortText
    score: float | None = None
    duration_seconds: Duration | None = None


class ItemProperties(msgspec.Struct):
    item_id: ShortText
    quantity: Annotated[int, msgspec.Meta(ge=0)] = 1


class AchievementProperties(msgspec.Struct):
    achievement_id: ShortText


class SessionEndProperties(msgspec.Struct):
    duration_seconds: Duration | None = None


class AdImpressionProperties(msgspec.Struct):
    ad_network: ShortText | None = None
    placement: ShortText | None = None
    revenue_usd: NonNegative | None = None


class NoProperties(msgspec.Struct):
    pass


PROPERTIES_BY_TYPE: dict[str, type[msgspec.Struct]] = {
    "session_start": NoProperties,
    "session_end": SessionEndProperties,
    "level_start": LevelProperties,
    "level_complete": LevelProperties,
    "level_fail": LevelProperties,
    "purchase": PurchaseProperties,
    "item_acquired": ItemProperties,
    "item_used": ItemProperties,
    "achievement_unlocked": AchievementProperties,
    "ad_impression": AdImpressionProperties,
    "custom": NoProperties,
    # Profile traits from identify calls: free-form, merged into the player's profile.
    "identify": NoProperties,
}

EVENT_TYPES = frozenset(PROPERTIES_BY_TYPE)
