"""Whole-request refusals, each with a status and a message the client can act on."""

from __future__ import annotations


class IngestError(Exception):
    """Refuse the whole request with `status`."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
