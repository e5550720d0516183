"""The refusal a route raises: a status and a message the caller can act on."""

from __future__ import annotations


class ApiError(Exception):
    """Refuse the request with `status`; `code` is a machine-readable name for the refusal."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header for a wait of `seconds` (whole seconds, at least one)."""
    return {"Retry-After": str(max(1, round(seconds)))}
