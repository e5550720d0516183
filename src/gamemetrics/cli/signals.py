"""How long-running commands stop."""

from __future__ import annotations

import signal


def stop_on_sigterm() -> None:
    """SIGTERM (from `gamemetrics up`) stops like Ctrl-C, so the summary is still printed."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
