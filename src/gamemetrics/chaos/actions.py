"""The experiments' actions: traffic on and off, waits at seeded moments, the faults and their removal."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from gamemetrics.chaos import lag, run_dir
from gamemetrics.chaos.proxy import Proxy
from gamemetrics.chaos.traffic import Traffic

_traffic: dict[Path, Traffic] = {}
_proxies: dict[Path, dict[str, Proxy]] = {}


def open_proxies(configuration: dict[str, Any] | None, names: list[str]) -> dict[str, Proxy]:
    """A proxy per name for the run, seeded from the run's seed (the jitter of its latency)."""
    seed = seeded_random(configuration).randrange(2**31)
    made = {name: Proxy(seed=seed + n) for n, name in enumerate(names)}
    _proxies.setdefault(run_dir.run_dir(configuration), {}).update(made)
    return made


def proxy(configuration: dict[str, Any] | None, name: str) -> Proxy:
    """The run's proxy `name`."""
    try:
        return _proxies[run_dir.run_dir(configuration)][name]
    except KeyError:
        raise RuntimeError(f"the run has no proxy {name!r}; its control makes them") from None


def close_proxies(configuration: dict[str, Any] | None) -> None:
    """Close the run's proxies (its load balancer, the bus's), if it has any."""
    for each in _proxies.pop(run_dir.run_dir(configuration), {}).values():
        each.close()


def start_traffic(configuration: dict[str, Any] | None = None, batch: int = 20, pause: float = 0.1) -> str:
    """Start steady traffic with the run's write key."""
    state = run_dir.read(configuration, "platform")
    # Through the run's load balancer when it has one.
    traffic = Traffic(state.get("traffic_url") or state["base_url"], state["write_key"], batch=batch, pause=pause)
    _traffic[run_dir.run_dir(configuration)] = traffic
    traffic.start()
    lag.start_sampling(configuration)
    return f"sending {batch} events every {pause:g}s to {traffic.base_url}"


def stop_traffic(configuration: dict[str, Any] | None = None) -> dict[str, int]:
    """Stop the traffic after its batch in hand is acknowledged; keep its record for the probes."""
    lag.stop_sampling(configuration)
    traffic = _traffic.pop(run_dir.run_dir(configuration), None)
    if traffic is None:
        return {}
    traffic.stop()
    record = traffic.record()
    run_dir.write(configuration, "traffic", record)
    return {"acknowledged": len(record["acknowledged"]), "answers": len(record["answers"]),
            "undelivered": len(record["undelivered"])}


def seeded_random(configuration: dict[str, Any] | None) -> random.Random:
    seed = (configuration or {}).get("seed") or os.environ.get(run_dir.SEED_VARIABLE) or "0"
    return random.Random(int(seed))


def pause_at_seeded_moment(configuration: dict[str, Any] | None = None, low: float = 1.0,
                           high: float = 5.0) -> float:
    """Wait a time drawn from the run's seed between `low` and `high` seconds; the fault comes then."""
    seconds = seeded_random(configuration).uniform(low, high)
    time.sleep(seconds)
    mark(configuration, "fault")
    return round(seconds, 3)


def hold_fault(configuration: dict[str, Any] | None = None, seconds: float = 5.0) -> float:
    """Keep the fault for `seconds` (the --duration of the run when it sets one)."""
    duration = float((configuration or {}).get("duration") or os.environ.get("GAMEMETRICS_CHAOS_DURATION")
                     or seconds)
    time.sleep(duration)
    mark(configuration, "removed")
    return duration


def mark(configuration: dict[str, Any] | None, name: str) -> None:
    """Note when `name` happened, for the probes that measure recovery from it."""
    try:
        marks = run_dir.read(configuration, "marks")
    except FileNotFoundError:
        marks = {}
    marks[name] = time.time()
    run_dir.write(configuration, "marks", marks)


def kill_postgres(configuration: dict[str, Any] | None = None) -> list[int]:
    """SIGKILL the platform's PostgreSQL server and every backend of it, as a lost pod's would be."""
    state = run_dir.read(configuration, "platform")
    pid_file = Path(state["data_dir"]) / "postgres" / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    victims = [postmaster, *postmaster.children(recursive=True)]
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    return [v.pid for v in victims]


def restart_postgres(configuration: dict[str, Any] | None = None) -> str:
    """Start the server again on its files (crash recovery replays its WAL), as a restarted pod would."""
    from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres

    state = run_dir.read(configuration, "platform")
    EmbeddedPostgres(Path(state["data_dir"]), stop_on_exit=False)
    mark(configuration, "removed")
    return "restarted"


def _platform_processes(state: dict[str, Any], marker: str) -> list[psutil.Process]:
    """The run's processes whose command line holds `marker` and the platform's data dir."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if marker in command and state["data_dir"] in command:
            found.append(process)
    return found


def kill_process(configuration: dict[str, Any] | None = None, name: str = "", marker: str = "") -> list[int]:
    """SIGKILL the platform's process `name` (found by `marker` in its command line), keeping how it
    was started so `restart_process` can start it again as a restarted pod would be."""
    state = run_dir.read(configuration, "platform")
    victims = _platform_processes(state, marker)
    if not victims:
        raise RuntimeError(f"no process of the platform runs {marker!r}")
    specs = [{"argv": v.cmdline(), "cwd": v.cwd(), "env": v.environ()} for v in victims]
    run_dir.write(configuration, f"killed-{name}", {"processes": specs})
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    return [v.pid for v in victims]


def restart_process(configuration: dict[str, Any] | None = None, name: str = "", log: str = "") -> list[int]:
    """Start the processes `kill_process` killed under `name` again, with their command line and
    environment; their output appended to `log` (relative to the platform's data dir)."""
    import subprocess

    state = run_dir.read(configuration, "platform")
    specs = run_dir.read(configuration, f"killed-{name}")["processes"]
    pids = []
    target = Path(state["data_dir"]) / log if log else Path(os.devnull)
    for spec in specs:
        with target.open("ab") as out:
            process = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=spec["env"], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        pids.append(process.pid)
    try:
        restarted = run_dir.read(configuration, "restarted")
    except FileNotFoundError:
        restarted = {"pids": []}
    restarted["pids"] += pids
    run_dir.write(configuration, "restarted", restarted)
    mark(configuration, "removed")
    return pids


_HTTP = "ingest,analytics,users"


def _supervised(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from gamemetrics.supervision import supervised_processes

    processes = supervised_processes(Path(state["data_dir"]))
    if processes is None:
        raise RuntimeError("the platform's `up` is not running")
    return {p["name"]: p for p in processes}


def second_ingest_behind_balancer(configuration: dict[str, Any] | None = None) -> str:
    """A second ingest process beside `up`'s HTTP process, on a port of its own, and a round-robin
    load balancer in front of both that the traffic then goes through."""
    import subprocess

    import httpx

    from gamemetrics.chaos.platform import free_port

    state = run_dir.read(configuration, "platform")
    first = psutil.Process(int(next(p for name, p in _supervised(state).items() if name.startswith("ingest"))["pid"]))
    port = free_port()
    env = {**first.environ(), "GAMEMETRICS_PORT": str(port)}
    # The second process serves ingest alone: a service that holds a local resource of its own
    # (the recommender's Qdrant directory) or runs one job for the platform (retention) runs once.
    command = first.cmdline()
    command[command.index("serve") + 1] = "ingest"
    with (run_dir.run_dir(configuration) / "ingest-2.log").open("ab") as log:
        second = subprocess.Popen(command, cwd=first.cwd(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        restarted = run_dir.read(configuration, "restarted")
    except FileNotFoundError:
        restarted = {"pids": []}
    restarted["pids"].append(second.pid)
    run_dir.write(configuration, "restarted", restarted)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or second.poll() is not None:
            raise RuntimeError("the second ingest process did not get ready")
        time.sleep(0.2)
    up_port = int(state["base_url"].rsplit(":", 1)[1])
    balancer = Proxy([("127.0.0.1", up_port), ("127.0.0.1", port)])
    _proxies.setdefault(run_dir.run_dir(configuration), {})["balancer"] = balancer
    state["traffic_url"] = f"http://{balancer.address}"
    run_dir.write(configuration, "platform", state)
    return f"ingest on ports {up_port} and {port} behind {balancer.address}"


def lose_a_zone(configuration: dict[str, Any] | None = None) -> list[str]:
    """SIGKILL half the processor processes and `up`'s own HTTP process (one of the two ingest) at once."""
    processes = _supervised(run_dir.read(configuration, "platform"))
    processors = sorted(name for name in processes if name.startswith("processor "))
    victims = [*processors[: len(processors) // 2], next(name for name in processes if name.startswith("ingest"))]
    for name in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(processes[name]["pid"]), signal.SIGKILL)
    run_dir.write(configuration, "zone", {"victims": {name: processes[name]["pid"] for name in victims}})
    # A killed process keeps its listening socket until it has exited: a connection that comes in the
    # meantime is accepted and then reset, which is the kill still under way, not the zone lost. The
    # fault begins once every victim is gone (or a zombie, whose sockets are closed).
    _gone([int(processes[name]["pid"]) for name in victims], seconds=10.0)
    return victims


def _gone(pids: list[int], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        if not alive:
            return
        pids = alive
        time.sleep(0.02)
    raise RuntimeError(f"processes {pids} were killed but did not exit within {seconds:g}s")


def wait_for_restarts(configuration: dict[str, Any] | None = None, seconds: float = 60.0) -> dict[str, int]:
    """Until `up` has restarted every process the zone lost (new pids, running); their restart counts."""
    state = run_dir.read(configuration, "platform")
    victims = run_dir.read(configuration, "zone")["victims"]
    deadline = time.monotonic() + seconds
    while True:
        processes = _supervised(state)
        back = {name: processes[name] for name in victims
                if processes[name]["state"] == "running" and processes[name]["pid"] != victims[name]}
        if len(back) == len(victims):
            mark(configuration, "removed")
            return {name: int(p["restarts"]) for name, p in back.items()}
        if time.monotonic() > deadline:
            raise RuntimeError(f"not restarted within {seconds:g}s: {sorted(set(victims) - set(back))}")
        time.sleep(0.2)


_stress: dict[Path, Any] = {}


def stress_cpu(configuration: dict[str, Any] | None = None, workers: int = 2, seconds: float = 60.0) -> int:
    """`stress-ng --cpu N` beside the processors, bounded by its own timeout as well."""
    import shutil
    import subprocess

    stress_ng = shutil.which("stress-ng")
    if stress_ng is None:
        raise RuntimeError("stress-ng is not installed: `make chaos-tools` installs it")
    process = subprocess.Popen([stress_ng, "--cpu", str(workers), "--timeout", f"{int(seconds)}s", "--quiet"],
                               stdin=subprocess.DEVNULL, start_new_session=True)
    _stress[run_dir.run_dir(configuration)] = process
    return process.pid


def stop_stress(configuration: dict[str, Any] | None = None) -> int | None:
    """End the CPU stress; its exit code."""
    process = _stress.pop(run_dir.run_dir(configuration), None)
    if process is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    code: int = process.wait(timeout=30)
    mark(configuration, "removed")
    return code


def freeze_processor(configuration: dict[str, Any] | None = None, name: str = "processor 1") -> int:
    """SIGSTOP one processor process: it neither heartbeats nor commits, as if cut off from the bus,
    until `thaw_processor`; a hold past the session timeout makes its group rebalance without it."""
    state = run_dir.read(configuration, "platform")
    pid = int(_supervised(state)[name]["pid"])
    os.kill(pid, signal.SIGSTOP)
    run_dir.write(configuration, "frozen", {"pid": pid})
    return pid


def thaw_processor(configuration: dict[str, Any] | None = None) -> int | None:
    """SIGCONT to the frozen processor: it wakes with the partitions it held before the rebalance."""
    try:
        pid = int(run_dir.read(configuration, "frozen")["pid"])
    except FileNotFoundError:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    (run_dir.run_dir(configuration) / "frozen.json").unlink()
    mark(configuration, "removed")
    return pid


def delay_bus(configuration: dict[str, Any] | None = None, proxy_name: str = "", mean_ms: float = 300.0,
              jitter_ms: float = 50.0) -> dict[str, Any]:
    """Add `mean_ms` ± `jitter_ms` of latency each way on the connections through proxy `proxy_name`."""
    chosen = proxy(configuration, proxy_name)
    chosen.set_latency(mean_ms, jitter_ms)
    return {"proxy": proxy_name, "mean_ms": mean_ms, "jitter_ms": jitter_ms, "connections": chosen.connections}


def cut_bus(configuration: dict[str, Any] | None = None, proxy_name: str = "",
            blackhole: bool = True) -> dict[str, Any]:
    """Partition what goes through proxy `proxy_name` from the broker: a blackhole (nothing flows,
    nothing is reset: heartbeats and requests vanish until timeouts), or a cut (every connection
    reset, new ones refused)."""
    chosen = proxy(configuration, proxy_name)
    if blackhole:
        chosen.set_blackhole(True)
    else:
        chosen.set_cut(True)
    return {"proxy": proxy_name, "blackhole": blackhole, "connections": chosen.connections,
            "forwarded_bytes": chosen.forwarded_bytes}


def restore_bus(configuration: dict[str, Any] | None = None, proxy_name: str = "") -> dict[str, Any]:
    """Lift every fault of proxy `proxy_name`: no latency, no blackhole, no cut."""
    chosen = proxy(configuration, proxy_name)
    chosen.set_latency(0.0, 0.0)
    chosen.set_cut(False)
    chosen.set_blackhole(False)
    mark(configuration, "removed")
    return {"proxy": proxy_name, "connections": chosen.connections, "forwarded_bytes": chosen.forwarded_bytes}


def unresolve_bootstrap(configuration: dict[str, Any] | None = None, name: str = "",
                        proxy_name: str = "") -> dict[str, Any]:
    """Make the bootstrap host `name` stop resolving in the run's namespace, then reset the clients'
    connections through proxy `proxy_name`: a name matters only when a client connects anew."""
    from gamemetrics.chaos import resolver

    resolver.set_resolving(run_dir.run_dir(configuration), name, resolving=False)
    chosen = proxy(configuration, proxy_name)
    chosen.reset()
    return {"name": name, "connections": chosen.connections}


def resolve_bootstrap(configuration: dict[str, Any] | None = None, name: str = "") -> str:
    """Make the bootstrap host `name` resolve again in the run's namespace."""
    from gamemetrics.chaos import resolver

    resolver.set_resolving(run_dir.run_dir(configuration), name, resolving=True)
    mark(configuration, "removed")
    return f"{name} resolves again"
