"""The test Kafka broker: a real Apache Kafka 4.x node (KRaft) from the jars `make kafka-libs` fetched,
started once per test session on free loopback ports and stopped at the end; and a broker of a
test's own with an SSL listener, for the TLS test.

Missing jars, Java or kcat fail the tests that need them, loudly: `make test` installs all three.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gamemetrics.adapters.kafka.local import LocalBroker, LocalBrokerError
from gamemetrics.chaos.proxy import Proxy
from gamemetrics.settings import Settings

LIBS = Path(__file__).resolve().parents[1] / ".kafka" / "libs"
SCRAM_USER = "gamemetrics"
SCRAM_PASSWORD = secrets.token_hex(12)


def start_broker(directory: Path, **options: object) -> LocalBroker:
    """A started, ready broker; a test that needs one fails (not skips) when it cannot start."""
    broker = LocalBroker(directory, LIBS, **options)  # type: ignore[arg-type]
    try:
        broker.start()
        broker.wait_ready()
    except LocalBrokerError as exc:
        broker.stop()
        pytest.fail(f"the test Kafka broker did not start (`make test-deps` fetches what it needs): {exc}",
                    pytrace=False)
    except BaseException:
        broker.stop()
        raise
    return broker


@pytest.fixture(scope="session")
def kafka_broker_and_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, Proxy]]:
    """One broker for the session, with a PLAINTEXT listener, a SASL/SCRAM one, and one it advertises
    at a loopback proxy of the tests (the network faults' proxy): clients bootstrapped at the proxy
    make every connection through it."""
    proxy = Proxy()
    broker = start_broker(tmp_path_factory.mktemp("kafka"), scram_users={SCRAM_USER: SCRAM_PASSWORD},
                          advertised={"PROXIED": proxy.address})
    proxy.backends = [broker.advertised_listener("PROXIED")]
    yield broker, proxy
    broker.stop()
    proxy.close()


@pytest.fixture(scope="session")
def kafka_broker(kafka_broker_and_proxy: tuple[LocalBroker, Proxy]) -> LocalBroker:
    """The session's broker."""
    return kafka_broker_and_proxy[0]


@pytest.fixture
def kafka_proxy(kafka_broker_and_proxy: tuple[LocalBroker, Proxy]) -> Iterator[Proxy]:
    """The session broker's proxy, its faults lifted again after the test."""
    proxy = kafka_broker_and_proxy[1]
    yield proxy
    proxy.set_latency(0.0)
    proxy.set_cut(False)
    proxy.set_blackhole(False)


@dataclass(frozen=True)
class TlsBroker:
    """A broker with an SSL listener whose certificate a throw-away CA signed."""

    broker: LocalBroker
    ca: Path  # the CA that signed the broker's certificate, for clients to trust
    other_ca: Path  # a CA that signed nothing of the broker's: a client trusting only it must refuse the broker

    @property
    def bootstrap(self) -> str:
        return self.broker.listener_bootstrap("SSL")


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _new_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return _certificate(name, key, None, key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
    ]), key


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def kafka_tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A broker of the test's own with a PLAINTEXT listener (for the fixtures' readiness check) and an SSL one.

    Its certificate names 127.0.0.1 and localhost, so clients verify the host name as well as the chain.
    """
    directory = tmp_path_factory.mktemp("kafka-tls")
    ca, ca_key = _new_ca("gamemetrics test CA")
    other_ca, _ = _new_ca("gamemetrics other test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("127.0.0.1", key, ca.subject, ca_key, [
        (x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
         False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])
    (directory / "ca.pem").write_text(_pem(ca))
    (directory / "other-ca.pem").write_text(_pem(other_ca))
    private_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    broker = start_broker(directory / "broker", listeners=["SSL"], config={
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": _pem(server) + _pem(ca),
        "listener.name.ssl.ssl.keystore.key": private_key,
    })
    try:
        yield TlsBroker(broker, directory / "ca.pem", directory / "other-ca.pem")
    finally:
        broker.stop()


def kafka_settings(settings: Settings, broker: LocalBroker, *, bus_partitions: int | None = None,
                   **kafka: object) -> Settings:
    """`settings` switched to `broker`, under a topic and group prefix of their own (isolation per test).

    `kafka` overrides fields of the Kafka settings, by their names there (`bootstrap=...`).
    """
    switched = settings.updated(kafka={
        "bootstrap": broker.bootstrap,
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
        "replication_factor": 1,
        "min_insync_replicas": 1,
        "delivery_timeout_ms": 5000,
        "session_timeout_ms": 6000,
        **kafka,
    })
    return switched if bus_partitions is None else switched.updated(bus={"partitions": bus_partitions})


def kcat() -> str:
    """The kcat binary; fails the test if it is not installed."""
    found = shutil.which("kcat")
    if found is None:
        pytest.fail("kcat is not installed; `make test-deps` installs Debian's kcat package", pytrace=False)
    return found
