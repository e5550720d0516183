"""The Cache port's contract, on both adapters: in this process, and on a real Redis server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gamemetrics.adapters.caching import Caching
from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.adapters.memory.ratelimit import TokenBucketLimiter
from gamemetrics.ports.cache import MISS, CacheError
from gamemetrics.settings import CacheSettings
from tests.conftest import free_port
from tests.redis_server import RedisServer


def _settings(kind: str, server: RedisServer | None, namespace: str) -> CacheSettings:
    return CacheSettings(redis_url=server.url if kind == "redis" and server else None, redis_namespace=namespace,
                         cache_max_bytes=1024 * 1024)


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def caching(kind: str, namespace: str, request: pytest.FixtureRequest) -> AsyncIterator[Caching]:
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    caching = Caching(_settings(kind, server, namespace))
    assert caching.shared == (kind == "redis")
    await caching.ping()
    yield caching
    await caching.close()


async def test_set_get_overwrite_delete(caching: Caching) -> None:
    cache = caching.cache("answers")
    assert await cache.get("a") is None
    await cache.set("a", b"\x00first", 30)
    assert await cache.get("a") == b"\x00first"
    await cache.set("a", b"second", 30)
    assert await cache.get("a") == b"second"
    await cache.delete("a")
    assert await cache.get("a") is None
    await cache.delete("never-set")


async def test_get_many_keeps_order_and_gaps(caching: Caching) -> None:
    cache = caching.cache("answers")
    await cache.set("x", b"1", 30)
    await cache.set("z", b"3", 30)
    assert await cache.get_many(["z", "y", "x"]) == [b"3", None, b"1"]
    assert await cache.get_many([]) == []


async def test_values_expire_after_their_time_to_live(caching: Caching) -> None:
    cache = caching.cache("answers")
    await cache.set("short", b"s", 0.2)
    await cache.set("long", b"l", 30)
    assert await cache.get("short") == b"s"
    await asyncio.sleep(0.4)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"l"


async def test_namespaces_keep_keys_apart(caching: Caching) -> None:
    await caching.cache("one").set("k", b"1", 30)
    assert await caching.cache("two").get("k") is None
    assert caching.cache("one") is caching.cache("one")


async def test_limiter_refuses_then_allows(caching: Caching) -> None:
    limiter = caching.limiter("login", rate=10.0, burst=2.0)
    assert await limiter.take("alice", 1) == 0.0
    assert await limiter.take("alice", 1) == 0.0
    wait = await limiter.take("alice", 1)
    assert 0.0 < wait <= 0.1 + 1e-6
    assert await limiter.take("bob", 2) == 0.0, "each key has its own bucket"
    assert await caching.limiter("other", rate=10.0, burst=2.0).take("alice", 2) == 0.0, \
        "each limiter has its own buckets"
    await asyncio.sleep(wait + 0.02)
    assert await limiter.take("alice", 1) == 0.0


async def test_limiter_refuses_more_than_a_burst(caching: Caching) -> None:
    limiter = caching.limiter("events", rate=100.0, burst=10.0)
    assert await limiter.take("key", 11) >= 1.0
    assert await limiter.take("key", 10) == 0.0, "a refused take costs nothing"


async def test_redis_limiter_is_shared_by_processes(redis_server: RedisServer, namespace: str) -> None:
    first, second = Caching(_settings("redis", redis_server, namespace)), Caching(_settings("redis", redis_server,
                                                                                            namespace))
    try:
        one, other = first.limiter("login", 1.0, 3.0), second.limiter("login", 1.0, 3.0)
        assert await one.take("address:10.0.0.1", 2) == 0.0
        assert await other.take("address:10.0.0.1", 1) == 0.0
        assert await other.take("address:10.0.0.1", 1) > 0.0
        assert await one.take("address:10.0.0.1", 1) > 0.0
        await first.cache("shared").set("k", b"v", 30)
        assert await second.cache("shared").get("k") == b"v"
    finally:
        await first.close()
        await second.close()


async def test_redis_buckets_expire_once_full_again(redis_server: RedisServer, namespace: str) -> None:
    caching = Caching(_settings("redis", redis_server, namespace))
    client = Redis.from_url(redis_server.url)
    try:
        await caching.limiter("login", rate=2.0, burst=10.0).take("someone@example.com", 1)
        ttl_ms = await client.pttl(f"{namespace}:limit:login:someone@example.com")
        assert 0 < ttl_ms <= 5000, "a bucket untouched for burst / rate seconds is full, so it goes"
    finally:
        await client.aclose()
        await caching.close()


async def test_unreachable_redis_is_a_cache_error(namespace: str) -> None:
    caching = Caching(CacheSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_namespace=namespace))
    try:
        with pytest.raises(CacheError):
            await caching.ping()
        with pytest.raises(CacheError):
            await caching.limiter("login", 1.0, 1.0).take("k", 1)
        with pytest.raises(CacheError):
            await caching.cache("answers").get("k")
    finally:
        await caching.close()


async def test_memory_cache_is_bounded_by_bytes_least_recently_used_first() -> None:
    cache = MemoryCache(max_bytes=3 * 101)
    for key in ("a", "b", "c"):
        await cache.set(key, b"x" * 100, 30)
    assert await cache.get("a") is not None  # a is now the most recently used
    await cache.set("d", b"x" * 100, 30)
    assert await cache.get("b") is None
    assert [await cache.get(k) is not None for k in ("a", "c", "d")] == [True, True, True]
    await cache.set("huge", b"x" * 1000, 30)
    assert await cache.get("huge") is None
    assert await cache.get("a") is not None, "a value larger than the cache evicts nothing"


async def test_memory_limiter_keeps_at_most_max_keys_buckets() -> None:
    limiter = TokenBucketLimiter(rate=0.001, burst=1.0, max_keys=3)
    assert await limiter.take("email:first", 1) == 0.0
    assert await limiter.take("email:first", 1) > 0.0
    for n in range(3):
        await limiter.take(f"email:other{n}", 1)
    # The drained bucket was the least recently used of four: dropped, it comes back full.
    assert await limiter.take("email:first", 1) == 0.0


async def test_memory_limiter_drops_buckets_once_full_again() -> None:
    limiter = TokenBucketLimiter(rate=10.0, burst=1.0)
    for n in range(100):
        await limiter.take(f"email:{n}", 1)
    await asyncio.sleep(0.15)
    await limiter.take("email:last", 1)
    assert len(limiter._buckets) == 1


def test_memo_keeps_none_expires_and_is_bounded() -> None:
    memo: LocalMemo[str, int | None] = LocalMemo(2, ttl_seconds=0.2)
    memo.put("unknown", None)
    assert memo.get("unknown") is None
    assert memo.get("never") is MISS
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("unknown") is MISS, "the least recently used entry went when a third came"
    assert len(memo) == 2
    time.sleep(0.3)
    assert memo.get("a") is MISS


def test_memo_without_time_to_live_is_an_lru() -> None:
    memo: LocalMemo[int, str] = LocalMemo(2)
    memo.put(1, "one")
    memo.put(2, "two")
    assert memo.get(1) == "one"
    memo.put(3, "three")
    assert (memo.get(1), memo.get(2), memo.get(3)) == ("one", MISS, "three")
