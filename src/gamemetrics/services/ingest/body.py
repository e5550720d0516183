"""Reading a request body within the limits: size, content type and bounded gzip inflation."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
from starlette.requests import Request

from gamemetrics.services.ingest.errors import IngestError

_JSON_TYPES = ("application/json", "text/plain")  # text/plain: sendBeacon and some SDKs


async def read_json_body(request: Request, *, max_bytes: int, max_inflated: int) -> bytes:
    """The JSON bytes of the request, inflated if gzip, or an IngestError with the reason."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise IngestError(415, f"content type {content_type or 'none'!r} is not supported; send application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise IngestError(413, f"body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise IngestError(413, f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise IngestError(415, f"content encoding {encoding!r} is not supported; use gzip or none")
    return inflate_gzip(body, max_inflated)


def inflate_gzip(body: bytes, max_inflated: int) -> bytes:
    """Inflate without ever holding more than `max_inflated` bytes (a gzip bomb stops here)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, max_inflated + 1)
    except zlib.error as exc:
        raise IngestError(400, f"body is not valid gzip: {exc}") from None
    if len(data) > max_inflated or inflater.unconsumed_tail:
        raise IngestError(413, f"gzip body inflates past the {max_inflated}-byte limit")
    if not inflater.eof:
        raise IngestError(400, "gzip body is truncated")
    if inflater.unused_data:  # a second member or junk: refusing beats silently dropping events in it
        raise IngestError(400, "gzip body has data after its end; send one gzip member")
    return data


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says why it is not one."""
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise IngestError(400, "body must be a JSON object")
    return payload
