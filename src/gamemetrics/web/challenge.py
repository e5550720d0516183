"""The `WWW-Authenticate: Bearer` challenge of RFC 6750 §3."""

from __future__ import annotations

import re

# RFC 6750 §3 allows error_description and scope only the characters %x20-21 / %x23-5B / %x5D-7E:
# a quoted-string of RFC 7230 §3.2.6 that never needs an escape. So a quote or backslash is
# replaced rather than backslash-escaped, and CR, LF and other controls cannot split the header.
_OUTSIDE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_SUBSTITUTES = {'"': "'", "\\": "/"}
MAX_DESCRIPTION = 200


def quoted(text: str) -> str:
    """`text` as an RFC 6750 quoted value: within the allowed characters, in double quotes."""
    return '"' + _OUTSIDE.sub(lambda m: _SUBSTITUTES.get(m.group(), "?"), text) + '"'


def bearer_challenge(error: str, *, description: str | None = None, scope: str | None = None) -> str:
    """`Bearer error="...", error_description="...", scope="..."` (the last two when given)."""
    parts = [f"error={quoted(error)}"]
    if description is not None:
        parts.append(f"error_description={quoted(description[:MAX_DESCRIPTION])}")
    if scope is not None:
        parts.append(f"scope={quoted(scope)}")
    return "Bearer " + ", ".join(parts)
