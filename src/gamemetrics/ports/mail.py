"""The Mail port: hand one message to the provider of its channel (email, SMS, push, Web Push, in-app).

A send returns once the provider has taken the message, or raises: MailError for a failure worth
retrying (the notifier retries with backoff, after `retry_after` when the provider said so),
Rejected when the provider refused the message for good (an SMTP 5xx, an invalid address or
token), UnsupportedChannel when this provider cannot carry the channel at all. Each message has an
id of its sender's, so a send retried after a failure that happened after delivery is
recognisable (the outbox stores it once; SMTP carries it as Message-ID).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from psycopg import AsyncConnection

Channel = Literal["email", "sms", "push", "web_push", "in_app"]
CHANNELS: frozenset[Channel] = frozenset({"email", "sms", "push", "web_push", "in_app"})


class MailError(Exception):
    """The provider did not take the message now; retry later (not before `retry_after` seconds, if given)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(MailError):
    """The provider refused the message for good; sending it again will not help. `recipient_gone`:
    the address itself is dead (an unregistered push token, an expired subscription)."""

    def __init__(self, message: str, *, recipient_gone: bool = False) -> None:
        super().__init__(message)
        self.recipient_gone = recipient_gone


class UnsupportedChannel(Rejected):
    """This provider does not carry the message's channel; retrying will not help."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one recipient of a tenant (an address, a phone number, a device token)."""

    tenant_id: uuid.UUID
    channel: Channel
    recipient: str
    body: str
    subject: str = ""
    player_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)


class Mail(Protocol):
    @property
    def channels(self) -> frozenset[Channel]:
        """The channels this provider carries."""
        ...

    async def send(self, message: OutgoingMessage) -> None:
        """Hand `message` to the provider; MailError if it did not take it."""
        ...


@runtime_checkable
class BatchMail(Protocol):
    """A provider that takes many messages in one exchange (the outbox in one statement)."""

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[MailError | None]:
        """Hand every message to the provider; for each, None when it was taken, else why not."""
        ...


@runtime_checkable
class Routing(Protocol):
    """A provider made of one adapter per channel; a sender may hand each channel's share to its adapter."""

    def carrier(self, channel: Channel) -> Mail | None:
        """The adapter that carries `channel`, or None."""
        ...


@runtime_checkable
class KeptMail(Protocol):
    """A provider whose messages are rows of the platform's own database (the outbox): a sender
    holding a transaction there has them kept in it, so a delivery's record and its message
    commit together or not at all."""

    async def keep(self, conn: AsyncConnection[Any], messages: Sequence[OutgoingMessage]) -> None:
        """Write every message in `conn`'s transaction (once per message id); raises what the database raised."""
        ...
