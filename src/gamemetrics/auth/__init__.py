"""Bearer tokens shared by the HTTP services: JWT access tokens (RFC 9068) checked against a key set."""

from gamemetrics.auth.tokens import InsufficientScope, InvalidToken, Principal, TokenIssuer, TokenVerifier

__all__ = ["InsufficientScope", "InvalidToken", "Principal", "TokenIssuer", "TokenVerifier"]
