"""`gamemetrics up`: the embedded database, the services as child processes, optional demo traffic,
and with `--kafka` a local Kafka broker as the bus."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from rich.console import Console

from gamemetrics import registry
from gamemetrics.adapters.kafka import KafkaBus
from gamemetrics.adapters.kafka.local import LocalBroker, LocalBrokerError
from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres
from gamemetrics.migrations import upgrade
from gamemetrics.runtime import EMBEDDED_DATABASE, topic_partitions
from gamemetrics.runtime.signals import interrupt_on_stop_signals
from gamemetrics.settings import Settings
from gamemetrics.supervision import PROCESSES_FILE, CrashLoop, Supervisor, withdraw_record

console = Console(stderr=True)
DEMO_OPERATOR = "demo@gamemetrics.local"


_LOCAL_BROKER = "kafka/running.json"


def run_platform(settings: Settings, *, demo: bool, kafka: bool = False,
                 kafka_via: Mapping[str, str] | None = None) -> int:
    """Run until SIGINT (Ctrl-C), SIGTERM or a service that keeps dying at start; returns the exit code.

    `kafka_via` routes a service's connections to the local broker through an address of its own
    (service name to host:port), which the broker advertises on a listener of its own.
    """
    if kafka and settings.kafka.bootstrap:
        raise SystemExit("--kafka starts a local broker; GAMEMETRICS_KAFKA_BOOTSTRAP already names one")
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server: EmbeddedPostgres | None = None
    if settings.database_url:
        url = settings.database_url
    else:
        server = EmbeddedPostgres(data_dir)
        url = server.ensure_database(EMBEDDED_DATABASE)
    supervisor = Supervisor(settings.restarts, data_dir / PROCESSES_FILE, log=console.print)
    broker: LocalBroker | None = None
    interrupt_on_stop_signals()
    try:
        console.print(f"[bold]GameMetrics Pro[/] data in {data_dir}")
        upgrade(url)
        env = _child_env(settings, url, data_dir)
        routes = dict(kafka_via or {})
        listeners = {f"VIA{n}": address for n, address in enumerate(sorted(set(routes.values())), start=1)}
        if kafka:
            broker = LocalBroker(data_dir / "kafka", advertised=listeners)
            env.update(_start_local_kafka(broker, settings))
            announce_local_broker(data_dir, broker.bootstrap, {
                address: "{}:{}".format(*broker.advertised_listener(name)) for name, address in listeners.items()})
        # Each worker process answers probes on a port of its own, which the HTTP process's /readyz
        # includes; the HTTP services share one process and port: one base URL, each path owned by
        # one service.
        peers: list[str] = []
        for spec in registry.SERVICES:
            if not spec.serves_http:
                for n in range(1, spec.replicas(settings) + 1):
                    port = _free_port(settings.host)
                    member = _routed(env, routes, [f"{spec.name} {n}", spec.name])
                    _serve(supervisor, f"{spec.name} {n}", spec.name, _member_env(member, settings, n),
                           "--health-port", str(port))
                    peers += ["--peer", f"{spec.name}=http://{settings.host}:{port}/readyz"]
        http = ",".join(registry.HTTP_NAMES)
        _serve(supervisor, http, http, _routed(env, routes, registry.HTTP_NAMES), *peers)
        base_url = f"http://{settings.host}:{settings.port}"
        _wait_ready(base_url, supervisor)
        console.print(f"[green]ready[/] at {base_url}  (dashboard at /dashboard;"
                      " POST /v1/events, /v1/batch, /graphql, GET /readyz, /metrics;"
                      " tokens: POST /oauth/token with a client from gamemetrics admin create-client)")
        if demo:
            key = _demo_key(env, data_dir)
            console.print_json(json.dumps(key))
            _demo_notifications(env, base_url, key)
            supervisor.start(
                "simulator",
                [sys.executable, "-m", "gamemetrics.cli", "simulate", "--write-key", key["write_key"],
                 "--import-key", key["import_key"], "--players", "200", "--days", "14", "--rate", "200",
                 "--url", base_url, "--forever"],
                env, restart=False,
            )
        return _supervise(supervisor)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(supervisor.processes())
        withdraw_record(data_dir)
        if broker is not None:
            withdraw_local_broker(data_dir)
            broker.stop()
        if server is not None:
            server.stop()
        console.print("stopped")


def announce_local_broker(data_dir: Path, bootstrap: str, via: Mapping[str, str] | None = None) -> None:
    """Tell commands run beside `up --kafka` (`gamemetrics status`) where its broker listens; `via`
    says, for each address a service is routed through, where the broker's listener for it is."""
    (data_dir / _LOCAL_BROKER).write_text(json.dumps({"bootstrap": bootstrap, "pid": os.getpid(),
                                                      "via": dict(via or {})}))


def _routed(env: dict[str, str], routes: Mapping[str, str], services: Sequence[str]) -> dict[str, str]:
    """The environment of a process serving `services` (or being member "NAME N" of one): bootstrapped
    through the first route given for one of them, if any."""
    address = next((routes[name] for name in services if name in routes), None)
    return env if address is None else {**env, "GAMEMETRICS_KAFKA_BOOTSTRAP": address}


def withdraw_local_broker(data_dir: Path) -> None:
    (data_dir / _LOCAL_BROKER).unlink(missing_ok=True)


def local_broker_of(data_dir: Path) -> str | None:
    """The bootstrap address of the broker an `up --kafka` running from `data_dir` started, if one is running."""
    try:
        running = json.loads((data_dir / _LOCAL_BROKER).read_text())
        bootstrap = str(running["bootstrap"])
        os.kill(int(running["pid"]), 0)  # an `up` that was killed left the file behind
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return bootstrap


def _serve(supervisor: Supervisor, name: str, service: str, env: dict[str, str], *options: str) -> None:
    supervisor.start(name, [sys.executable, "-m", "gamemetrics.cli", "serve", service, *options], env)


def _free_port(host: str) -> int:
    """A port free on `host` now, for a child to listen on."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _member_env(env: dict[str, str], settings: Settings, n: int) -> dict[str, str]:
    """A worker's environment: static Kafka membership needs one instance id per member."""
    if settings.kafka.group_instance_id is None:
        return env
    return {**env, "GAMEMETRICS_KAFKA_GROUP_INSTANCE_ID": f"{settings.kafka.group_instance_id}-{n}"}


def _start_local_kafka(broker: LocalBroker, settings: Settings) -> dict[str, str]:
    """Start the local broker, create the topics on it; the settings that point the services at it."""
    try:
        broker.start()
        console.print(f"starting Kafka at {broker.bootstrap} (log: {broker.log_path})")
        broker.wait_ready()
    except LocalBrokerError as exc:
        raise SystemExit(str(exc)) from None
    env = {
        "GAMEMETRICS_KAFKA_BOOTSTRAP": broker.bootstrap,
        "GAMEMETRICS_KAFKA_REPLICATION_FACTOR": "1",  # one node: one replica of each partition
        "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS": "1",
    }
    local = settings.updated(kafka={"bootstrap": broker.bootstrap, "replication_factor": 1, "min_insync_replicas": 1})
    report = asyncio.run(KafkaBus(local, topic_partitions(local), client_id="gamemetrics-up").ensure_topics(
        topic_partitions(local)
    ))
    for topic, differences in report.drift.items():
        console.print(f"[yellow]topic {topic} differs from the settings:[/] {'; '.join(differences)}")
    console.print(f"[green]Kafka ready[/] at {broker.bootstrap}; topics created: {len(report.created)}")
    return env


def _child_env(settings: Settings, url: str, data_dir: Path) -> dict[str, str]:
    metrics_dir = data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    return {
        **os.environ,
        "GAMEMETRICS_DATABASE_URL": url,
        "GAMEMETRICS_DATA_DIR": str(data_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


def _wait_ready(base_url: str, supervisor: Supervisor, timeout: float = 180.0) -> None:
    """Until /readyz answers 200; a process that dies meanwhile is restarted, one that keeps dying stops `up`.
    A quiet laptop is ready in seconds; the bound is for a machine that is busy with other work as well."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            supervisor.tick()
        except CrashLoop as exc:
            raise SystemExit(f"{exc} while starting") from None
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the HTTP services were not ready at {base_url} within {timeout:.0f}s")


def _demo_key(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The demo tenant's ids and keys, made once and found again on the next `up`."""
    saved = data_dir / "demo.json"
    if saved.exists():
        return {str(k): str(v) for k, v in json.loads(saved.read_text()).items()}

    def admin(*args: str) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", *args], env=env, check=True,
                             capture_output=True, text=True).stdout
        return {str(k): str(v) for k, v in json.loads(out).items()}

    tenant = admin("create-tenant", "Demo Studio")["tenant_id"]
    game = admin("create-game", "--tenant", tenant, "Demo Game")["game_id"]
    live = admin("create-write-key", "--game", game)["write_key"]
    history = admin("create-write-key", "--game", game, "--environment", "import", "--allow-import")["write_key"]
    # A demo operator, so the dashboard's first screen has data: its password is made here and
    # printed once with the rest of the demo's keys.
    password = secrets.token_urlsafe(12)
    subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "create-operator", "--email", DEMO_OPERATOR,
                    "--role", "tenant_admin", "--tenant", tenant, "--password-stdin"],
                   env=env, check=True, capture_output=True, text=True, input=password + "\n")
    key = {"tenant_id": tenant, "game_id": game, "write_key": live, "import_key": history,
           "dashboard": "/dashboard/", "operator_email": DEMO_OPERATOR, "operator_password": password}
    saved.write_text(json.dumps(key))
    saved.chmod(0o600)
    return key


DEMO_TEMPLATES = {
    "thanks": {"category": "lifecycle", "content": {"in_app": {
        "title": "Thank you!", "body": "Enjoy your {{ event.properties.item_id }}."}},
        "sample": {"event": {"properties": {"item_id": "gems"}}}},
    "stuck": {"category": "help", "content": {"in_app": {
        "title": "Stuck on level {{ event.properties.level }}?", "body": "Here is a hint to get past it."}},
        "sample": {"event": {"properties": {"level": 3}}}},
}
DEMO_RULES = {
    "thank-buyers": {"trigger": {"event_type": "purchase"}, "template": "thanks", "channels": ["in_app"],
                     "cooldown_seconds": 86400},
    "help-the-stuck": {"trigger": {"event_type": "level_fail", "count": 3, "within": "session", "per": ["level"]},
                       "template": "stuck", "channels": ["in_app"], "cooldown_seconds": 3600},
}


def _demo_notifications(env: dict[str, str], base_url: str, key: dict[str, str]) -> None:
    """The demo game's templates and rules, so the simulated players' purchases and lost levels
    fire notifications into the outbox (`gamemetrics notifications outbox`)."""
    out = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "issue-token", "--tenant",
                          key["tenant_id"], "--scopes", "notifications:send"], env=env, check=True,
                         capture_output=True, text=True).stdout
    auth = {"Authorization": f"Bearer {json.loads(out)['access_token']}"}
    game = f"{base_url}/v1/games/{key['game_id']}"
    for name, template in DEMO_TEMPLATES.items():
        httpx.put(f"{game}/notification-templates/{name}", json=template, headers=auth).raise_for_status()
    for name, rule in DEMO_RULES.items():
        httpx.put(f"{game}/notification-rules/{name}", json=rule, headers=auth).raise_for_status()


def _supervise(supervisor: Supervisor) -> int:
    """Restart what dies until a stop signal (KeyboardInterrupt) or a crash loop, which stops `up` with 1."""
    try:
        supervisor.run()
    except CrashLoop as exc:
        console.print(f"[red]{exc}[/]; stopping")
        return 1
    return 0


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
