"""The `notifications.requests` contract: a notification asked of the notifier, by a service or a
game server, as `POST /v1/notifications` asks it over HTTP.

Keyed by tenant + player, so one player's requests keep their order. A request without an
idempotency key gets its position on the topic as one, so a request read twice (the bus delivers
at least once) is still one notification.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from gamemetrics.ports.bus import Message, Record

SCHEMA_VERSION_HEADER = "schema_version"
SCHEMA_VERSION = "1"


class NotificationRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """One notification to send: whom, with which template and data, on which channels."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    player_id: str
    template: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    channels: list[str] | str = "auto"
    send_at: datetime | None = None
    send_until: datetime | None = None
    """The window's end: a message not sent by then (deferred by quiet hours, or still retrying) is given up."""
    idempotency_key: str | None = None
    requested_by: str = ""


class UnreadableRequest(ValueError):
    """A record of the requests topic that is not a notification request of a known version."""


_decoder = msgspec.json.Decoder(NotificationRequest)


def request_message(request: NotificationRequest) -> Message:
    """The message that carries `request`, keyed by tenant + player."""
    return Message(request.tenant_id.bytes + request.player_id.encode(), msgspec.json.encode(request),
                   {SCHEMA_VERSION_HEADER: SCHEMA_VERSION})


def read_request(record: Record) -> NotificationRequest:
    """The request `record` carries, keyed by its position when it brought no key of its own."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    if record.headers.get(SCHEMA_VERSION_HEADER) != SCHEMA_VERSION:
        raise UnreadableRequest(f"{where}: schema version {record.headers.get(SCHEMA_VERSION_HEADER)!r},"
                                f" this reader knows {SCHEMA_VERSION!r}")
    try:
        request = _decoder.decode(record.value)
    except msgspec.DecodeError as exc:
        raise UnreadableRequest(f"{where}: {exc}") from None
    if request.idempotency_key is None:
        request = msgspec.structs.replace(request, idempotency_key=f"{record.topic}:{record.partition}:{record.offset}")
    return request
