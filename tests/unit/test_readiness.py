"""How the host's `/readyz` merges the services' checks: per service as answered, per check the worst."""

from __future__ import annotations

import socket

from gamemetrics.readiness import readiness


async def _fine() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("connection refused")


async def test_every_service_ready_is_ready() -> None:
    ok, body = await readiness({"ingest": {"database": _fine, "bus": _fine}, "analytics": {"database": _fine}})
    assert ok
    assert body == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}, "services": {
        "ingest": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
        "analytics": {"status": "ok", "checks": {"database": "ok"}},
    }}


async def test_one_failing_check_makes_the_platform_unready_and_names_the_service() -> None:
    ok, body = await readiness({"ingest": {"database": _fine, "bus": _fine},
                                "users": {"database": _fine, "bus": _refused}})
    assert not ok
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "bus": "users: unavailable: connection refused"}
    assert body["services"]["ingest"] == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}
    assert body["services"]["users"] == {"status": "unavailable",
                                         "checks": {"database": "ok", "bus": "unavailable: connection refused"}}


async def test_a_service_alone_answers_its_checks_unprefixed() -> None:
    ok, body = await readiness({"processor": {"database": _refused}})
    assert not ok
    assert body["checks"] == {"database": "unavailable: connection refused"}


async def test_a_peer_that_does_not_answer_makes_its_service_unready() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/readyz"  # bound, never listening: refused
        ok, body = await readiness({"ingest": {"database": _fine}}, {"processor": [url]})
    assert not ok
    assert body["services"]["ingest"]["status"] == "ok"
    processor = body["services"]["processor"]
    assert processor["status"] == "unavailable"
    assert list(processor["checks"]) == ["process"] and url in processor["checks"]["process"]
    assert body["checks"]["process"].startswith("processor: unavailable")
