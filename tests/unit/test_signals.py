"""Stop signals: the first stops, a second Ctrl-C forces, a Ctrl-C and a supervisor's SIGTERM never force."""

from __future__ import annotations

import asyncio
import os
import signal

from gamemetrics.runtime.signals import STOP_SIGNALS, on_stop_signals


async def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    await asyncio.sleep(0.05)  # the loop runs the handler on its next turn


async def _received(sequence: list[int]) -> tuple[int, int]:
    stops: list[int] = []
    forces: list[int] = []
    on_stop_signals(lambda: stops.append(1), lambda: forces.append(1))
    try:
        for signum in sequence:
            await _deliver(signum)
    finally:
        for sig in STOP_SIGNALS:
            asyncio.get_running_loop().remove_signal_handler(sig)
    return len(stops), len(forces)


async def test_one_signal_stops() -> None:
    assert await _received([signal.SIGTERM]) == (1, 0)
    assert await _received([signal.SIGINT]) == (1, 0)


async def test_a_ctrl_c_and_a_supervisors_sigterm_in_either_order_never_force() -> None:
    assert await _received([signal.SIGINT, signal.SIGTERM]) == (1, 0)
    assert await _received([signal.SIGTERM, signal.SIGINT]) == (1, 0)
    assert await _received([signal.SIGTERM, signal.SIGTERM]) == (1, 0)


async def test_a_second_ctrl_c_forces() -> None:
    assert await _received([signal.SIGINT, signal.SIGINT]) == (1, 1)
    assert await _received([signal.SIGTERM, signal.SIGINT, signal.SIGINT]) == (1, 1)
