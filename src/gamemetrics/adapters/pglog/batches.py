"""Record batches: the messages one transaction appends to one partition, stored as one row.

Like Kafka's record batches, a row holds consecutive offsets `base_offset..last_offset` and each
entry keeps its offset as a delta from the base, so entries can later be removed (a GDPR erasure)
without renumbering the others.

A row's `records` is the MessagePack list of its entries compressed with zstd level 1, client side:
a batch of processed events shrinks about five-fold, and the append's COPY, TOAST and WAL shrink
with it (the embedded PostgreSQL has no lz4, and pglz costs more than the append). Compressed bytes
cannot be searched, so the row's `keys` column holds the batch's distinct keys, uncompressed and
concatenated: an erasure picks the batches that may hold a key with `position(key IN keys)`
without decompressing any. A column of its own rather than raw keys in front of the compressed
body, because the search then reads kilobytes of keys instead of the whole batch, and neither
side needs a framing format to split one value in two. A key can also match across two
neighbouring keys; that only costs the erasure a batch decoded for nothing, since it compares
the decoded keys exactly.

Rows written before migration 0010 held the MessagePack uncompressed (`encode_entries`), and
`decode_batch` still reads them: a zstd frame starts with a magic number that no MessagePack list
starts with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import zstandard


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """One message of a batch."""

    delta: int
    key: bytes
    value: bytes
    headers: dict[str, str] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Entry])
# Made once and reused: a zstd context is costly to set up. Neither object is thread-safe, which is
# fine while the bus runs on one event loop thread (and migrations before it starts).
_compressor = zstandard.ZstdCompressor(level=1)
_decompressor = zstandard.ZstdDecompressor()
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def encode_batch(entries: Sequence[Entry]) -> tuple[bytes, bytes]:
    """Entries → the `keys` and the `records` of one row."""
    keys = b"".join(dict.fromkeys(entry.key for entry in entries))
    return keys, _compressor.compress(_encoder.encode(entries))


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """Entries → uncompressed MessagePack: `records` as rows held them before migration 0010."""
    return _encoder.encode(list(entries))


def decode_batch(data: bytes) -> list[Entry]:
    """A row's `records`, compressed or (from before migration 0010) not → its entries."""
    if data[:4] == _ZSTD_MAGIC:
        data = _decompressor.decompress(data)
    return _decoder.decode(data)
