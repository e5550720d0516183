"""Errors a client can act on; each carries its GraphQL error code in `extensions`."""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of the errors shown to clients as they are; anything else is masked."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.extensions = {"code": self.code}


class BadUserInput(AnalyticsError):
    code = "BAD_USER_INPUT"


class NotFound(AnalyticsError):
    code = "NOT_FOUND"


class Forbidden(AnalyticsError):
    code = "FORBIDDEN"


class Unauthenticated(AnalyticsError):
    code = "UNAUTHENTICATED"


class TooComplex(AnalyticsError):
    code = "QUERY_TOO_COMPLEX"
