"""`up --kafka-via`: a service (or one member of a worker) routed to the local broker through an
address of its own; a malformed route is refused with a message, and the environments follow it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gamemetrics.adapters.kafka.local import LocalBroker
from gamemetrics.cli import app as cli_app
from gamemetrics.platform import _routed


def said(output: str) -> str:
    """The error's words, without the box and line breaks the terminal output puts around them."""
    return " ".join(output.replace("│", " ").split())


def test_a_route_that_is_not_service_host_port_or_lacks_kafka_is_refused() -> None:
    for route in ("nobody=127.0.0.1:9", "ingest=127.0.0.1", "ingest", "processor 1=127.0.0.1:x"):
        refused = CliRunner().invoke(cli_app, ["up", "--kafka", "--kafka-via", route])
        assert refused.exit_code == 2 and "is not SERVICE=HOST:PORT of a service" in said(refused.output)
    refused = CliRunner().invoke(cli_app, ["up", "--kafka-via", "ingest=127.0.0.1:9"])
    assert refused.exit_code == 2 and "need --kafka" in said(refused.output)


def test_a_member_route_goes_before_its_services_and_an_unrouted_process_keeps_the_broker() -> None:
    env = {"GAMEMETRICS_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "OTHER": "x"}
    routes = {"processor 1": "127.0.0.1:7001", "processor": "127.0.0.1:7002", "ingest": "name.test:7003"}
    assert _routed(env, routes, ["processor 1", "processor"])["GAMEMETRICS_KAFKA_BOOTSTRAP"] == "127.0.0.1:7001"
    assert _routed(env, routes, ["processor 2", "processor"])["GAMEMETRICS_KAFKA_BOOTSTRAP"] == "127.0.0.1:7002"
    assert _routed(env, routes, ["ingest", "analytics"]) == {**env, "GAMEMETRICS_KAFKA_BOOTSTRAP": "name.test:7003"}
    assert _routed(env, {}, ["ingest"]) is env


def test_the_broker_advertises_each_routed_listener_at_its_address(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path, advertised={"via1": "name.test:7003"})
    properties = broker._properties()
    host, port = broker.advertised_listener("VIA1")
    assert f"VIA1://{host}:{port}" in properties.split("listeners=")[1].split("\n")[0]
    assert "VIA1://name.test:7003" in properties and "VIA1:PLAINTEXT" in properties
    assert port not in (broker.port, broker.controller_port)
