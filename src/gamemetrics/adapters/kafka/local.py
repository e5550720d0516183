"""A local single-node Apache Kafka broker (KRaft) from the jars `make kafka-libs` fetches.

For trying the scaled bus on one machine (`make kafka`, `make up KAFKA=1`) and for the tests; a
production cluster is run by its operators, not by this module.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# Where `make kafka-libs` copies the broker's jars, relative to the repository.
DEFAULT_LIBS = Path(".kafka/libs")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


class LocalBrokerError(RuntimeError):
    """The local broker cannot be prepared or started; the message says what to install or look at."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _property_value(value: str) -> str:
    """`value` escaped for a Java properties file, where a PEM certificate or key must fit on one line."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


class LocalBroker:
    """One KRaft node (broker and controller) on loopback ports, its data and log in `directory`.

    SCRAM users given here are written at format time, and a SASL_PLAINTEXT listener takes them
    beside the PLAINTEXT one. Further `listeners` (each named after its security protocol, e.g.
    SSL) get ports of their own and `config` adds broker properties, such as their keystores.
    Each of `advertised` (listener name to host:port) is a PLAINTEXT listener on a port of its own
    that the broker advertises at that address instead, e.g. a proxy forwarding to it: a client
    bootstrapped there is told to connect there again, so all its connections pass the proxy.
    The ports stay the same across restarts, so clients reconnect.
    """

    def __init__(
        self, directory: Path, libs: Path = DEFAULT_LIBS, *, port: int = 0,
        scram_users: Mapping[str, str] | None = None, listeners: Sequence[str] = (),
        config: Mapping[str, str] | None = None, heap_mb: int = 512, advertised: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory.resolve()
        self.libs = libs.resolve()
        self.port = port or free_port()
        self.controller_port = free_port()
        self.scram_users = dict(scram_users or {})
        self.sasl_port = free_port() if self.scram_users else None
        self.listener_ports = {name: free_port() for name in listeners}
        self.advertised = {name.upper(): address for name, address in (advertised or {}).items()}
        self.advertised_ports = {name: free_port() for name in self.advertised}
        self.config = dict(config or {})
        self.heap_mb = heap_mb
        self.log_path = self.directory / "broker.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise LocalBrokerError("this broker has no SCRAM users, so no SASL listener")
        return f"127.0.0.1:{self.sasl_port}"

    def listener_bootstrap(self, name: str) -> str:
        if name not in self.listener_ports:
            raise LocalBrokerError(f"this broker has no {name} listener")
        return f"127.0.0.1:{self.listener_ports[name]}"

    def advertised_listener(self, name: str) -> tuple[str, int]:
        """Where the broker listens for the advertised listener `name`: what its proxy forwards to."""
        if name.upper() not in self.advertised_ports:
            raise LocalBrokerError(f"this broker has no advertised listener {name}")
        return "127.0.0.1", self.advertised_ports[name.upper()]

    def _java(self) -> str:
        home = os.environ.get("JAVA_HOME")
        java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
        if not java or not Path(java).exists():
            raise LocalBrokerError("the local Kafka broker needs Java 17 or later on PATH (or JAVA_HOME)")
        return java

    def _classpath(self) -> str:
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise LocalBrokerError(f"no Kafka jars in {self.libs}; run `make kafka-libs` (Maven fetches them)")
        return f"{self.libs}/*"

    def _properties(self) -> str:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.directory / 'data'}",
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Topics come from `gamemetrics kafka init`, never from a typo in a client.
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
        ]
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            lines.append(f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}")
            for mechanism in SCRAM_MECHANISMS:
                lines.append(
                    f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        for name, port in self.listener_ports.items():
            listeners.append(f"{name}://127.0.0.1:{port}")
            advertised.append(f"{name}://127.0.0.1:{port}")
            protocols.append(f"{name}:{name}")
        for name, port in self.advertised_ports.items():
            listeners.append(f"{name}://127.0.0.1:{port}")
            advertised.append(f"{name}://{self.advertised[name]}")
            protocols.append(f"{name}:PLAINTEXT")
        lines += [
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            f"listener.security.protocol.map={','.join(protocols)}",
            *(f"{key}={_property_value(value)}" for key, value in self.config.items()),
        ]
        return "\n".join(lines) + "\n"

    def _jvm(self, heap_mb: int) -> list[str]:
        return [
            self._java(), f"-Xms{min(heap_mb, 256)}m", f"-Xmx{heap_mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            # The quick compiler only: on a small machine the optimising one (C2) spends more CPU
            # compiling the broker, for minutes after start, than the broker spends on the
            # messages themselves, and takes it from the services on the same cores.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.directory / 'logs'}", "-cp", self._classpath(),
        ]

    def prepare(self) -> None:
        """Write the configuration; format the storage the first time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "server.properties").write_text(self._properties())
        (self.directory / "log4j2.properties").write_text(_LOG4J2)
        if (self.directory / "data" / "meta.properties").exists():
            return
        command = [
            *self._jvm(256), "kafka.tools.StorageTool", "format", "--ignore-formatted",
            f"--cluster-id={_cluster_id()}",  # one "=" word: an id may begin with "-"
            "-c", str(self.directory / "server.properties"),
        ]
        for name, password in self.scram_users.items():
            for mechanism in SCRAM_MECHANISMS:
                command += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise LocalBrokerError(f"formatting the Kafka storage failed:\n{(done.stdout + done.stderr)[-3000:]}")

    def start(self) -> None:
        """Start the broker process (formatting first if needed); `wait_ready` waits for it."""
        if self.running:
            return
        self.prepare()
        with self.log_path.open("ab") as log:
            log.write(f"--- start at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*self._jvm(self.heap_mb), "kafka.Kafka", str(self.directory / "server.properties")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C at the terminal goes to our process, which stops this one
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the broker answers a metadata request listing itself; raise with its log otherwise."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.connection.setup.timeout.ms": 1000,
                             "reconnect.backoff.max.ms": 200, "log_level": 0})
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise LocalBrokerError(f"the Kafka broker exited while starting:\n{self.log_tail()}")
            try:
                if admin.list_topics(timeout=1.0).brokers:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise LocalBrokerError(f"the Kafka broker was not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean shutdown; SIGKILL if it takes longer than `timeout`."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs (what a crash or the OOM killer does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"

    def __enter__(self) -> LocalBroker:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
