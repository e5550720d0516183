"""Bounded memos of Python objects in this process, least recently used first out."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Literal, TypeVar

from cachetools import Cache, LRUCache, TTLCache

from gamemetrics.ports.cache import MISS, Miss

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LocalMemo(Generic[K, V]):
    """At most `max_entries` objects, each for at most `ttl_seconds` after it was put (None: until evicted)."""

    def __init__(self, max_entries: int, ttl_seconds: float | None = None) -> None:
        self._entries: Cache[K, V] = (
            LRUCache(max_entries) if ttl_seconds is None else TTLCache(max_entries, ttl_seconds)
        )

    def get(self, key: K) -> V | Literal[Miss.MISS]:
        try:
            return self._entries[key]
        except KeyError:
            return MISS

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)
