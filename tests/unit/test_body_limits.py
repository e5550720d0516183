"""Request bodies within their limits: bounded gzip inflation, truncation, garbage, sizes and types."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from gamemetrics.services.ingest.body import inflate_gzip, read_json_body
from gamemetrics.services.ingest.errors import IngestError

MiB = 1024 * 1024


def refusal(body: bytes, max_inflated: int) -> IngestError:
    with pytest.raises(IngestError) as info:
        inflate_gzip(body, max_inflated)
    return info.value


def bomb(inflated_mib: int) -> bytes:
    """A gzip member of `inflated_mib` MiB of zeros, made without holding them all at once."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    return b"".join([*(packer.compress(zeros) for _ in range(inflated_mib)), packer.flush()])


# ---------------------------------------------------------------- inflate_gzip


def test_a_gzip_body_inflates_to_what_was_sent() -> None:
    data = b'{"events": []}' * 1000
    assert inflate_gzip(gzip.compress(data), len(data)) == data


def test_the_bound_is_inclusive() -> None:
    data = b"x" * 4096
    assert inflate_gzip(gzip.compress(data), 4096) == data
    error = refusal(gzip.compress(data), 4095)
    assert error.status == 413 and "4095-byte limit" in error.message


def test_a_gzip_bomb_stops_at_the_bound_without_inflating_it() -> None:
    body = bomb(256)  # 256 MiB of zeros in a few hundred KiB
    assert len(body) < MiB
    tracemalloc.start()
    try:
        error = refusal(body, MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.status == 413
    # Inflating the whole bomb would take 256 MiB; the bound keeps it to about the limit.
    assert peak < 4 * MiB, f"inflating held {peak / MiB:.1f} MiB for a 1 MiB limit"


@pytest.mark.parametrize("cut", [1, 8, 20, 100])
def test_a_truncated_gzip_body_is_a_400(cut: int) -> None:
    body = gzip.compress(b"0123456789" * 100)
    error = refusal(body[:-cut], MiB)
    assert error.status == 400 and "truncated" in error.message


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x1f\x8b",
        b"definitely not gzip",
        zlib.compress(b'{"events": []}'),  # zlib framing, not gzip
        gzip.compress(b"x" * 100)[:10] + b"\xff" * 30,
    ],
)
def test_garbage_is_a_400(body: bytes) -> None:
    assert refusal(body, MiB).status == 400


def test_a_wrong_checksum_is_a_400() -> None:
    body = bytearray(gzip.compress(b"payload" * 50))
    body[-8] ^= 0xFF  # the CRC-32 in the trailer
    error = refusal(bytes(body), MiB)
    assert error.status == 400 and "not valid gzip" in error.message


@pytest.mark.parametrize("tail", [gzip.compress(b'{"more": 1}'), b"junk"])
def test_data_after_the_gzip_stream_is_refused_not_dropped(tail: bytes) -> None:
    error = refusal(gzip.compress(b'{"events": []}') + tail, MiB)
    assert error.status == 400


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=5000), limit=st.integers(min_value=0, max_value=6000))
def test_inflation_is_exact_within_the_bound_and_refused_past_it(data: bytes, limit: int) -> None:
    body = gzip.compress(data)
    if len(data) <= limit:
        assert inflate_gzip(body, limit) == data
    else:
        assert refusal(body, limit).status == 413


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=400), st.binary(max_size=200).map(lambda b: gzip.compress(b)[:-3] + b)))
def test_any_bytes_inflate_or_are_refused_with_a_status(body: bytes) -> None:
    try:
        data = inflate_gzip(body, 1000)
    except IngestError as exc:
        assert exc.status in (400, 413) and exc.message
    else:
        assert len(data) <= 1000


# ---------------------------------------------------------------- read_json_body


def request(body: bytes, headers: dict[str, str], *, chunk: int = 64 * 1024) -> Request:
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(chunks) - 1} for i, part in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http", "method": "POST", "path": "/v1/events", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


async def read(body: bytes, headers: dict[str, str], **limits: int) -> bytes:
    return await read_json_body(request(body, headers), max_bytes=limits.get("max_bytes", 1000),
                                max_inflated=limits.get("max_inflated", 10_000))


async def test_plain_and_gzip_bodies_are_read() -> None:
    assert await read(b'{"events": []}', {"content-type": "application/json"}) == b'{"events": []}'
    packed = gzip.compress(b"[" + b"1," * 3000 + b"1]")
    headers = {"content-type": "application/json; charset=utf-8", "content-encoding": "gzip"}
    assert await read(packed, headers) == b"[" + b"1," * 3000 + b"1]"


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(IngestError) as info:
        await read(b"{}", {"content-type": "application/json", "content-length": "5000"})
    assert info.value.status == 413 and "5000 bytes" in info.value.message


async def test_a_streamed_body_over_the_limit_is_refused() -> None:
    with pytest.raises(IngestError) as info:
        await read(b"x" * 1500, {"content-type": "application/json"}, max_bytes=1000)
    assert info.value.status == 413


async def test_the_inflated_limit_applies_to_gzip_bodies() -> None:
    with pytest.raises(IngestError) as info:
        await read(gzip.compress(b" " * 20_000), {"content-type": "application/json", "content-encoding": "gzip"})
    assert info.value.status == 413


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/xml"}, 415),
        ({}, 415),
        ({"content-type": "application/json", "content-encoding": "br"}, 415),
    ],
)
async def test_unsupported_types_and_encodings_are_a_415(headers: dict[str, str], status: int) -> None:
    with pytest.raises(IngestError) as info:
        await read(b"{}", headers)
    assert info.value.status == status
