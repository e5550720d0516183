"""Stopping on SIGTERM (what Kubernetes and systemd send) and SIGINT (Ctrl-C), however started.

A shell starts its background jobs with SIGINT ignored, and Python keeps an inherited "ignore"
instead of raising KeyboardInterrupt; so every process installs its own handlers for both.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(stop: Callable[[], None], force: Callable[[], None] | None = None) -> None:
    """On the running loop: the first stop signal calls `stop`; a second SIGINT calls `force` (when
    given), as a second Ctrl-C would. One SIGINT and one SIGTERM, in either order, never force: that
    is a Ctrl-C reaching a supervisor and its children at once, and the supervisor then stopping them."""
    loop = asyncio.get_running_loop()
    received: set[int] = set()

    def handle(signum: int) -> None:
        if not received:
            stop()
        elif signum == signal.SIGINT and signum in received and force is not None:
            force()
        received.add(signum)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, sig)


def interrupt_on_stop_signals() -> None:
    """For a synchronous supervisor: the first stop signal raises KeyboardInterrupt where it lands;
    later ones are ignored, so the cleanup the first one starts runs to its end."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, _already_stopping)
        raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: what the cleanup starts then gets the default dispositions back."""
