"""The Chaos Toolkit control that gives each run a platform of its own: started before the
experiment, stopped after it, whatever the outcome."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import InterruptExecution

from gamemetrics.chaos import platform, resolver, run_dir


def before_experiment_control(context: dict[str, Any], configuration: dict[str, Any] | None = None,
                              options: list[str] | None = None, environment: dict[str, str] | None = None,
                              proxies: dict[str, list[str]] | None = None, bootstrap_name: str | None = None,
                              **kwargs: Any) -> None:
    """Start `gamemetrics up [options]` with `environment` (GAMEMETRICS_* settings) for the run.

    Each of `proxies` (a name to the services or members, e.g. "processor 1", it carries) is a TCP
    proxy of this process between those and the local broker, which advertises a listener at it.
    With `bootstrap_name`, they reach it by that host name, which resolves only inside a mount
    namespace of the run with hosts and resolver files of its own.
    """
    from gamemetrics.chaos import actions

    folder = run_dir.run_dir(configuration)
    options = list(options or [])
    made = actions.open_proxies(configuration, list(proxies or {}))
    host = bootstrap_name or "127.0.0.1"
    for name, services in (proxies or {}).items():
        options += [arg for service in services for arg in ("--kafka-via", f"{service}={host}:{made[name].port}")]

    def point_proxies(running: dict[str, Any]) -> None:
        for proxy in made.values():
            listener = running["via"][f"{host}:{proxy.port}"]
            address, port = listener.rsplit(":", 1)
            proxy.backends = [(address, int(port))]

    try:
        wrapper = resolver.namespace(folder, bootstrap_name) if bootstrap_name else []
        state = platform.start(folder, *options, settings=environment, wrapper=wrapper,
                               on_broker=point_proxies if made else None)
    except Exception as exc:
        actions.close_proxies(configuration)
        raise InterruptExecution(f"the platform did not start: {exc}") from exc
    run_dir.write(configuration, "platform", state)


def after_experiment_control(context: dict[str, Any], state: Any = None,
                             configuration: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Stop the run's traffic if still sending, then its platform."""
    from gamemetrics.chaos import actions, memory, recommendations

    actions.stop_traffic(configuration)
    recommendations.stop_requests(configuration)
    memory.release_memory(configuration)
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
