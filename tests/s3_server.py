"""The test S3 server: S3Proxy from the jars `make test-deps` fetched (deploy/s3proxy), run with Java
on a free loopback port, storing in a directory of the session, with signed requests required.

Missing jars or Java fail the tests that need them, loudly: `make test-deps` fetches and installs both.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from gamemetrics.settings import ObjectSettings
from tests.net import free_port

LIBS = Path(__file__).resolve().parents[1] / ".s3proxy" / "libs"
BUCKET = "gamemetrics-test"

# S3Proxy logs through logback, which prints everything at DEBUG when it finds no configuration.
_LOGBACK = """<configuration>
  <appender name="file" class="ch.qos.logback.core.FileAppender">
    <file>{log}</file>
    <encoder><pattern>%d %-5level %logger{{36}} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="file"/></root>
</configuration>
"""


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str

    def settings(self, prefix: str) -> ObjectSettings:
        """Object settings for the test bucket under `prefix` (tests keep apart by prefix)."""
        return ObjectSettings(archive_url=f"s3://{BUCKET}/{prefix}", s3_endpoint_url=self.endpoint,
                              s3_access_key_id=self.access_key_id,
                              s3_secret_access_key=SecretStr(self.secret_access_key))



def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3Proxy for the session, with one bucket, on the filesystem backend."""
    java = shutil.which("java")
    if java is None or not (LIBS / ".fetched").exists():
        pytest.fail("S3Proxy needs Java and its jars; `make test-deps` installs Java and fetches them",
                    pytrace=False)
    directory: Path = tmp_path_factory.mktemp("s3proxy")
    (directory / "blobs" / BUCKET).mkdir(parents=True)  # a bucket is a directory of this backend
    port = free_port()
    identity, credential = "gamemetrics", secrets.token_hex(16)
    (directory / "s3proxy.conf").write_text("\n".join([
        f"s3proxy.endpoint=http://127.0.0.1:{port}",
        "s3proxy.authorization=aws-v2-or-v4",
        f"s3proxy.identity={identity}",
        f"s3proxy.credential={credential}",
        "jclouds.provider=filesystem-nio2",
        f"jclouds.identity={identity}",
        f"jclouds.credential={credential}",
        f"jclouds.filesystem.basedir={directory / 'blobs'}",
        "",
    ]))
    log = directory / "s3proxy.log"
    (directory / "logback.xml").write_text(_LOGBACK.format(log=log))
    process = subprocess.Popen(
        # The quick compiler only, as for the local Kafka broker: a short-lived test server.
        [java, "-XX:TieredStopAtLevel=1", "-Xmx256m", f"-Dlogback.configurationFile={directory / 'logback.xml'}",
         "-cp", f"{LIBS}/*", "org.gaul.s3proxy.Main", "--properties", str(directory / "s3proxy.conf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(directory / "stderr.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = (directory / "stderr.log").read_text() + (log.read_text() if log.exists() else "")
                pytest.fail(f"S3Proxy did not start on port {port}:\n{output[-3000:]}", pytrace=False)
            time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}", identity, credential)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
