"""Idempotent Kafka producer: a send returns once every message of it has a successful delivery report."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage
from confluent_kafka import Producer as ConfluentProducer

from gamemetrics.adapters.kafka.config import Names, client_log
from gamemetrics.ports.bus import BusError, Message

# How long `send` waits for room in librdkafka's queue when it is full (backpressure), at most.
_QUEUE_FULL_WAIT_S = 0.01


class _Delivery:
    """The delivery reports of one `send`, counted in librdkafka's poll thread, handed to the event loop once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, topic: str) -> None:
        self.loop = loop
        self.topic = topic
        self.future: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()
        self._produced = 0
        self._reported = 0
        self._sealed = False
        self._error: BusError | None = None

    def on_delivery(self, err: KafkaError | None, msg: KafkaMessage) -> None:
        with self._lock:
            self._reported += 1
            if err is not None and self._error is None:
                self._error = BusError(
                    f"Kafka did not take a message for {self.topic} (partition {msg.partition()}): {err.str()}"
                )
            self._finish_locked()

    def seal(self, produced: int, error: BusError | None = None) -> None:
        """All `produced` messages of this send are queued; no more will be. (Counted here, once, rather
        than under the lock per message: reports that come before this cannot finish the send anyway.)"""
        with self._lock:
            self._produced = produced
            self._sealed = True
            if error is not None and self._error is None:
                self._error = error
            self._finish_locked()

    def _finish_locked(self) -> None:
        if self._sealed and self._reported == self._produced:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._resolve, self._error)

    def _resolve(self, error: BusError | None) -> None:
        if self.future.done():
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)


class _Client:
    """One librdkafka producer and the thread that serves its delivery reports."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.fatal: KafkaError | None = None
        self.last_error: KafkaError | None = None
        self.last_error_at = 0.0
        self.producer = ConfluentProducer({**config, "error_cb": self._on_error})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-producer-poll", daemon=True)
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err
        self.last_error_at = time.monotonic()
        if err.fatal():
            self.fatal = err
        client_log.warning("kafka producer: %s", err.str())

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.poll(0.05)
            except Exception:  # a failing callback must not stop the reports of every later send
                client_log.exception("kafka producer: delivery report handling failed")

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` s for outstanding messages, then stop; returns how many were left."""
        left = self.producer.flush(timeout)
        self._stop.set()
        self._thread.join()
        if left:
            self.producer.purge()  # their sends get a failed delivery report, so their waiters answer
            self.producer.poll(0)
        return left


# What librdkafka takes as a message's headers.
_Headers = list[tuple[str, str | bytes | None]]


def _queued(client: _Client, physical: str, message: Message, headers: _Headers | None,
            on_delivery: Callable[[KafkaError | None, KafkaMessage], None]) -> bool:
    """Queue `message` in librdkafka; False when its queue is full, BusError when Kafka refuses it."""
    try:
        client.producer.produce(physical, message.value, message.key, headers=headers, on_delivery=on_delivery)
    except BufferError:
        return False
    except KafkaException as exc:
        raise BusError(f"cannot produce to {physical}: {exc.args[0].str()}") from exc
    return True


class KafkaProducer:
    """The Bus producer on Kafka: keys as given, so one key (tenant + player) stays on one partition.

    Produce calls only queue messages in librdkafka; a thread serves delivery reports and wakes the
    waiting send once all of its messages are acknowledged by every in-sync replica, or one failed.
    """

    def __init__(
        self, config: dict[str, Any], names: Names, topics: Collection[str], *, delivery_timeout_s: float
    ) -> None:
        self._config = config
        self._names = names
        self._topics = topics
        self._delivery_timeout_s = delivery_timeout_s
        self._client: _Client | None = None
        self._closed = False

    def _current(self) -> _Client:
        client = self._client
        if client is not None and client.fatal is not None:
            # An idempotent producer that hit a fatal error cannot send again: start a fresh one.
            client_log.warning("replacing kafka producer after fatal error: %s", client.fatal.str())
            client.close(0)
            client = None
        if client is None:
            client = self._client = _Client(self._config)
        return client

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        """Queue every message, then wait until all are acknowledged; BusError if any is not."""
        if topic not in self._topics:
            raise BusError(f"unknown topic {topic!r}")
        if self._closed:
            raise BusError("producer is closed")
        if not messages:
            return
        client = self._current()
        started = time.monotonic()
        delivery = _Delivery(asyncio.get_running_loop(), topic)
        physical = self._names.topic(topic)
        deadline = asyncio.get_running_loop().time() + self._delivery_timeout_s
        error: BusError | None = None
        produced = 0
        for message in messages:
            headers: _Headers | None = list(message.headers.items()) if message.headers else None
            try:
                # Straight from the loop: the coroutine that waits for room only when the queue is full.
                if not _queued(client, physical, message, headers, delivery.on_delivery):
                    await self._queue_when_room(client, physical, message, headers, delivery.on_delivery, deadline)
            except BusError as exc:
                error = exc
                break
            produced += 1
        delivery.seal(produced, error)
        try:
            # Every produced message gets a report within message.timeout.ms; the margin covers the poll thread.
            await asyncio.wait_for(asyncio.shield(delivery.future), self._delivery_timeout_s + 5.0)
        except TimeoutError:
            raise BusError(f"no delivery report for {topic} within {self._delivery_timeout_s + 5.0:.0f}s") from None
        except BusError as exc:
            last = client.last_error
            if last is not None and client.last_error_at >= started and last.code() in _WORTH_NAMING:
                raise BusError(f"{exc}; the client reports: {last.str()}") from None
            raise

    async def _queue_when_room(
        self, client: _Client, physical: str, message: Message, headers: _Headers | None,
        on_delivery: Callable[[KafkaError | None, KafkaMessage], None], deadline: float,
    ) -> None:
        """Wait for delivery reports to make room in librdkafka's queue, within the timeout, then queue."""
        loop = asyncio.get_running_loop()
        while not _queued(client, physical, message, headers, on_delivery):
            if loop.time() >= deadline:
                raise BusError(f"the producer queue for {physical} stayed full")
            await asyncio.sleep(_QUEUE_FULL_WAIT_S)

    async def close(self) -> None:
        """Refuse new sends, wait (bounded) for the queued ones, stop the delivery thread."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            left = await asyncio.to_thread(client.close, self._delivery_timeout_s)
            if left:
                client_log.warning("kafka producer closed with %d messages undelivered", left)


# Client errors that explain a failed delivery better than "timed out" does.
_WORTH_NAMING = {
    KafkaError._AUTHENTICATION,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TRANSPORT,
    KafkaError._SSL,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}
