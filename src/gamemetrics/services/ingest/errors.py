"""Whole-request refusals, each with a status and a message the client can act on."""

from __future__ import annotations

from gamemetrics.web import errors


class IngestError(errors.ApiError):
    """Refuse the whole request with `status` (and Retry-After when the client should wait `retry_after` s);
    `events` is how many events it held, when that is known."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None, events: int = 0) -> None:
        super().__init__(status, message, headers=errors.retry_after(retry_after) if retry_after else None)
        self.events = events
