"""Key → partition, stable across processes and restarts."""

from __future__ import annotations

import zlib


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a key always lands in."""
    return zlib.crc32(key) % partitions
