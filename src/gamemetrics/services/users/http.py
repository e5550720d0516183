"""What the users routes share beyond the common HTTP plumbing: their refusals and the audit's name of a caller."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import HTTPExceptionHandler

from gamemetrics.auth.tokens import Principal
from gamemetrics.web.refusals import exception_handlers


def refusals() -> Mapping[type[Exception], HTTPExceptionHandler]:
    """The users app's exception handlers: `{"error": ...}` bodies (RFC 6749's shape for OAuth2 errors)."""
    return exception_handlers(token_message=lambda exc: f"invalid token: {exc}")


def actor_of(principal: Principal) -> str:
    """How the audit log names a token's holder."""
    return f"client:{principal.subject}" if not principal.subject.startswith(("operator:", "tenant:")) \
        else principal.subject
