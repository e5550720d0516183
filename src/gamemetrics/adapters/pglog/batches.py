"""Record batches: the messages one transaction appends to one partition, stored as one row.

Like Kafka's record batches, a row holds consecutive offsets `base_offset..last_offset` and each
entry keeps its offset as a delta from the base, so entries can later be removed (a GDPR erasure)
without renumbering the others. Keys and values are stored as raw bytes (MessagePack `bin`), never
compressed here, so what a row holds can still be searched for byte by byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """One message of a batch."""

    delta: int
    key: bytes
    value: bytes
    headers: dict[str, str] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Entry])


def encode_batch(messages: Iterable[tuple[int, bytes, bytes, Mapping[str, str]]]) -> bytes:
    """(delta, key, value, headers) per message → the bytes of one row."""
    return _encoder.encode([Entry(delta, key, value, dict(headers) if headers else None)
                            for delta, key, value, headers in messages])


def encode_entries(entries: Iterable[Entry]) -> bytes:
    return _encoder.encode(list(entries))


def decode_batch(data: bytes) -> list[Entry]:
    return _decoder.decode(data)
