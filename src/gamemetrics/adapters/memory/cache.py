"""Bytes with a time to live in this process's memory, bounded by their total size."""

from __future__ import annotations

from collections.abc import Sequence

from cachetools import TLRUCache

# Each entry is (its time to live, its bytes): the cache asks the entry itself when it expires.
_Entry = tuple[float, bytes]


def _expires(key: str, entry: _Entry, now: float) -> float:
    return now + entry[0]


def _size(entry: _Entry) -> float:
    # An empty value still counts, so the number of entries is bounded as well as their bytes.
    return len(entry[1]) + 1


class MemoryCache:
    """At most `max_bytes` of values; past that the least recently used go first, expired ones before."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: TLRUCache[str, _Entry] = TLRUCache(max_bytes, _expires, getsizeof=_size)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        entries = [self._entries.get(key) for key in keys]
        return [None if entry is None else entry[1] for entry in entries]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if len(value) + 1 > self._entries.maxsize:
            # Larger than the whole cache: keeping it would mean dropping everything else.
            self._entries.pop(key, None)
            return
        self._entries[key] = (ttl_seconds, value)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)
