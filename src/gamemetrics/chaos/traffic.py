"""Steady traffic through the public API: batches of fresh events at a fixed pace, each resent
until acknowledged (after Retry-After when refused), every answer and its latency recorded."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

# A request unanswered this long counts as a hang, a violation of the hypothesis.
HANG_SECONDS = 30.0
# Resending one batch stops after this long: a refusal that never ends fails the run.
DELIVERY_SECONDS = 120.0


class Traffic:
    """One sending thread; `stop()` lets it finish the batch in hand, then `record()` says what happened."""

    def __init__(self, base_url: str, write_key: str, *, batch: int = 20, pause: float = 0.1,
                 limit_seconds: float = 600.0) -> None:
        self.base_url = base_url
        self.write_key = write_key
        self.batch = batch
        self.pause = pause
        self.limit_seconds = limit_seconds  # the loop ends by itself even if never stopped
        self.acknowledged: list[str] = []
        self.answers: list[dict[str, Any]] = []
        self.undelivered: list[str] = []
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DELIVERY_SECONDS + HANG_SECONDS)

    def record(self) -> dict[str, Any]:
        return {"acknowledged": self.acknowledged, "answers": self.answers, "undelivered": self.undelivered,
                "started": self.started}

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.write_key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.base_url, timeout=HANG_SECONDS, headers=headers) as client:
            n = 0
            while not self._stop.is_set() and time.time() - self.started < self.limit_seconds:
                events = [{"event_id": str(uuid.uuid4()), "event_type": "session_start",
                           "player_id": f"chaos-player-{(n + i) % 50}", "timestamp": datetime.now(UTC).isoformat()}
                          for i in range(self.batch)]
                n += self.batch
                self._deliver(client, events)
                self._stop.wait(self.pause)

    def _deliver(self, client: httpx.Client, events: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + DELIVERY_SECONDS
        while time.monotonic() < deadline:
            began = time.monotonic()
            answer: dict[str, Any] = {"at": time.time()}
            try:
                response = client.post("/v1/events", json={"events": events})
            except httpx.TimeoutException as exc:
                answer.update(status=None, seconds=round(time.monotonic() - began, 3), error=type(exc).__name__)
                self.answers.append(answer)
                continue
            except httpx.TransportError as exc:  # nothing listening, a reset: not an answer, resend
                answer.update(status=0, seconds=round(time.monotonic() - began, 3), error=type(exc).__name__)
                self.answers.append(answer)
                time.sleep(0.2)
                continue
            answer.update(status=response.status_code, seconds=round(time.monotonic() - began, 3),
                          retry_after=response.headers.get("Retry-After"))
            if response.status_code == 200:
                self.answers.append(answer)
                self.acknowledged.extend(e["event_id"] for e in events)
                return
            answer["body"] = response.text[:300]
            self.answers.append(answer)
            if response.status_code != 503:
                break  # recorded as a violation; resending a 4xx or a 500 changes nothing
            time.sleep(min(float(answer["retry_after"] or 1), 1.0))
        self.undelivered.extend(e["event_id"] for e in events)
