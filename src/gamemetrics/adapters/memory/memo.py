"""Bounded memos of Python objects in this process, least recently used first out."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, Literal, TypeVar

from gamemetrics.ports.cache import MISS, Miss

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LocalMemo(Generic[K, V]):
    """At most `max_entries` objects, each for at most `ttl_seconds` after it was put (None: until evicted).

    An ordered dict of (deadline, value) rather than cachetools' caches: a memo sits on hot paths
    (three lookups per cached analytics answer), and cachetools' TTL bookkeeping on every read
    cost more than the rest of such a lookup. An expired entry goes when it is next read or when
    it is the least recently used one of a full memo.
    """

    def __init__(self, max_entries: int, ttl_seconds: float | None = None) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_seconds

    def get(self, key: K) -> V | Literal[Miss.MISS]:
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        if self._ttl is not None and entry[0] <= time.monotonic():
            del self._entries[key]
            return MISS
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        deadline = time.monotonic() + self._ttl if self._ttl is not None else 0.0
        self._entries[key] = (deadline, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
