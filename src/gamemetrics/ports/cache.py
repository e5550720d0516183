"""The Cache port: bytes with a time to live and token-bucket rate limits, shared by every process
on the same backend (Redis), or kept in this process (the embedded default).

Beside it, `Memo` is the shape of the per-process memos of Python objects on hot paths (resolved
write keys, verified tokens, analytics answers). Those never go through `Cache`: a kept object is
cheaper to hand back than to serialise and parse on every hit, and each process keeps its own by
design, since every entry is either keyed by the data version it was computed from or trusted only
for a bounded time. What several processes must agree on, such as a rate limit, goes through
`Cache` and `RateLimiter`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from typing import Final, Literal, Protocol, TypeVar


class CacheError(Exception):
    """The cache's backend could not be reached; callers answer 503 rather than guess."""


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value kept under `key`, or None when there is none or it has expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values under `keys`, in the same order, None where missing."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep `value` under `key` for `ttl_seconds` (at most: a bounded cache may drop it sooner)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget `key`; nothing happens if it is not kept."""
        ...


class RateLimiter(Protocol):
    async def take(self, key: str, amount: float) -> float:
        """Take `amount` tokens for `key`: 0.0 when allowed, else the seconds to wait before retrying."""
        ...


class Miss(enum.Enum):
    """What `Memo.get` answers for a key it does not hold, so that None can be a kept value."""

    MISS = enum.auto()


MISS: Final = Miss.MISS

K = TypeVar("K", bound=Hashable, contravariant=True)
V = TypeVar("V")


class Memo(Protocol[K, V]):
    """A bounded per-process memo of Python objects, each kept for at most its time to live."""

    def get(self, key: K) -> V | Literal[Miss.MISS]:
        """The object kept under `key`, or MISS."""
        ...

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key`, evicting the least recently used entry when full."""
        ...


class Caches(Protocol):
    """The caches and rate limiters a service is built with, all on one backend."""

    @property
    def shared(self) -> bool:
        """Whether they are shared with the platform's other processes (and so worth a readiness check)."""
        ...

    def cache(self, namespace: str) -> Cache:
        """The cache of `namespace`; the same one for every caller of this process."""
        ...

    def limiter(self, name: str, rate: float, burst: float) -> RateLimiter:
        """`rate` tokens a second per key up to `burst`; `name` keeps each limiter's buckets apart."""
        ...

    async def ping(self) -> None:
        """Raise CacheError if the backend cannot be reached."""
        ...
