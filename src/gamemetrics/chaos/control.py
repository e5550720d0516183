"""The Chaos Toolkit control that gives each run a platform of its own: started before the
experiment, stopped after it, whatever the outcome."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import InterruptExecution

from gamemetrics.chaos import platform, run_dir


def before_experiment_control(context: dict[str, Any], configuration: dict[str, Any] | None = None,
                              options: list[str] | None = None, environment: dict[str, str] | None = None,
                              **kwargs: Any) -> None:
    """Start `gamemetrics up [options]` with `environment` (GAMEMETRICS_* settings) for the run."""
    folder = run_dir.run_dir(configuration)
    try:
        state = platform.start(folder, *(options or []), settings=environment)
    except Exception as exc:
        raise InterruptExecution(f"the platform did not start: {exc}") from exc
    run_dir.write(configuration, "platform", state)


def after_experiment_control(context: dict[str, Any], state: Any = None,
                             configuration: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Stop the run's traffic if still sending, then its platform."""
    from gamemetrics.chaos import actions

    actions.stop_traffic(configuration)
    actions.close_proxies(configuration)
    actions.stop_stress(configuration)
    actions.thaw_processor(configuration)
    try:
        started = run_dir.read(configuration, "platform")
    except FileNotFoundError:
        return
    platform.stop(started)
    platform.stop_restarted(run_dir.run_dir(configuration))
    platform.stop_postgres(started)
    platform.remove_data(started)
