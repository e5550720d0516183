"""A minimal HTTP/1.1 client for the benchmarks: requests made into bytes once, sent on kept-alive
loopback connections, so the load generator costs little of the CPU it shares with the server."""

from __future__ import annotations

import asyncio
import re

_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
_RETRY_AFTER = re.compile(rb"(?i)\r\nretry-after: *(\d+)")


def post_request(path: str, bearer: str, content: bytes) -> bytes:
    """A whole POST of JSON `content` to `path`, as bytes."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n\r\n").encode() + content


async def connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> tuple[int, bytes, bytes]:
    """One request on a kept-alive connection; the status, the head and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = _LENGTH.search(head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return int(head[9:12]), head, body


def retry_after(head: bytes) -> float:
    """The seconds a 429 or 503 asks the client to wait (1 when it does not say)."""
    match = _RETRY_AFTER.search(head)
    return float(match.group(1)) if match else 1.0
