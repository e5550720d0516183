"""Events to the public HTTP API: batches within the request limits, retries with backoff, pacing.

Shared by `gamemetrics simulate` and `gamemetrics import`. Every event carries its own id, so a
batch retried after a lost answer is stored once: the processor drops the repeats.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

import httpx
import msgspec

T = TypeVar("T")

MAX_BATCH_EVENTS = 500
MAX_BODY_BYTES = 1024 * 1024
_ENVELOPE_BYTES = len(b'{"events":[]}')
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class DeliveryError(RuntimeError):
    """A batch the server refused as a whole, or one still failing when the retry budget ran out."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After is a floor, never shortened."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    give_up_after_seconds: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** attempt)
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server said about one batch: how many it took, and the index and reason of each refusal."""

    accepted: int
    rejected: list[tuple[int, str]]


@dataclass(slots=True)
class Tally:
    """Running totals of one endpoint's deliveries."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    reasons: list[str] = field(default_factory=list)
    keep_reasons: int = 20

    def add(self, sent: int, answer: Answer, describe: Callable[[int], str]) -> None:
        self.sent += sent
        self.accepted += answer.accepted
        self.rejected += len(answer.rejected)
        for index, error in answer.rejected:
            if len(self.reasons) < self.keep_reasons:
                self.reasons.append(f"{describe(index)}: {error}")


class EventSender:
    """Posts batches of encoded events to one endpoint with one write key."""

    def __init__(
        self, client: httpx.Client, *, path: str, write_key: str, retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._path = path
        self._headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = random.Random()
        self.tally = Tally()

    @property
    def path(self) -> str:
        return self._path

    def post(self, events: Sequence[bytes]) -> Answer:
        """Send one batch, retrying 429, 503 and network failures; raise DeliveryError otherwise."""
        body = b'{"events":[' + b",".join(events) + b"]}"
        started = time.monotonic()
        attempt = 0
        while True:
            self.tally.requests += 1
            try:
                response = self._client.post(self._path, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", self._retry.backoff(attempt, self._jitter)
            else:
                if response.status_code == 200:
                    return _answer(response, len(events), self._path)
                if response.status_code not in RETRY_STATUSES:
                    raise DeliveryError(f"POST {self._path} answered {response.status_code}: {_error(response)}")
                problem = f"{response.status_code} {_error(response)}"
                wait = max(_retry_after(response) or 0.0, self._retry.backoff(attempt, self._jitter))
            if time.monotonic() - started + wait > self._retry.give_up_after_seconds:
                raise DeliveryError(
                    f"POST {self._path} still failing after {attempt + 1} attempts"
                    f" over {time.monotonic() - started:.0f}s: {problem}"
                )
            self.tally.retries += 1
            attempt += 1
            self._sleep(wait)


class Pacer:
    """Lets events out at `rate` a second on average; a sender that fell behind does not burst to catch up."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate = rate if rate and rate > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._origin: float | None = None
        self._released = 0

    @property
    def rate(self) -> float | None:
        return self._rate

    def batch_size(self, most: int = MAX_BATCH_EVENTS) -> int:
        """Events per request: about half a second's worth when paced, so the flow stays smooth."""
        if self._rate is None:
            return most
        return max(1, min(most, int(self._rate / 2)))

    def wait(self, events: int) -> None:
        """Block until `events` more may go."""
        if self._rate is None:
            return
        now = self._clock()
        if self._origin is None:
            self._origin = now
        due = self._origin + self._released / self._rate
        if due > now:
            self._sleep(due - now)
        elif now - due > 1.0:
            # Fell behind (a slow server, a retry): start counting again from now.
            self._origin, self._released = now, 0
        self._released += events


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Encoded events and what each one came from (an event, a line number...)."""

    bodies: list[bytes]
    sources: list[T]


def batched(
    items: Iterable[tuple[bytes, T]], *, max_events: int = MAX_BATCH_EVENTS, max_bytes: int = MAX_BODY_BYTES,
) -> Iterator[Batch[T]]:
    """Group encoded events into request bodies within both limits (one event over the byte limit goes alone)."""
    bodies: list[bytes] = []
    sources: list[T] = []
    size = _ENVELOPE_BYTES
    for body, source in items:
        if bodies and (len(bodies) >= max_events or size + len(body) + 1 > max_bytes):
            yield Batch(bodies, sources)
            bodies, sources, size = [], [], _ENVELOPE_BYTES
        bodies.append(body)
        sources.append(source)
        size += len(body) + 1
    if bodies:
        yield Batch(bodies, sources)


def http_client(base_url: str) -> httpx.Client:
    """One keep-alive connection pool to the platform's base URL."""
    return httpx.Client(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(60.0, connect=10.0))


def _answer(response: httpx.Response, sent: int, path: str) -> Answer:
    try:
        payload = msgspec.json.decode(response.content)
        rejected = [(int(r["index"]), str(r["error"])) for r in payload.get("rejected", [])]
        return Answer(int(payload["accepted"]), rejected)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DeliveryError(
            f"POST {path} answered 200 with an unexpected body ({exc}): {response.text[:200]}"
        ) from None


def _error(response: httpx.Response) -> str:
    try:
        payload = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return response.text[:300] or response.reason_phrase
    if isinstance(payload, dict) and "error" in payload:
        return str(payload["error"])
    return response.text[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
