"""`/readyz` under `gamemetrics up`: every service of the registry reports its own checks, the
processors (processes of their own) through their health ports."""

from __future__ import annotations

from gamemetrics import registry
from tests.e2e.conftest import RunningPlatform


def test_readyz_under_up_reports_each_services_checks(running: RunningPlatform) -> None:
    for path in ("/readyz", "/health/ready"):
        response = running.http.get(path)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "ok",
            "checks": {"database": "ok", "bus": "ok", "vectors": "ok"},
            "services": {
                "ingest": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
                "analytics": {"status": "ok", "checks": {"database": "ok"}},
                "users": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
                "dashboard": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
                "notifier": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
                "retention": {"status": "ok", "checks": {"database": "ok"}},
                "processor": {"status": "ok", "checks": {"database": "ok", "bus": "ok"}},
                "recommender": {"status": "ok", "checks": {"database": "ok", "bus": "ok", "vectors": "ok"}},
            },
        }
        assert sorted(response.json()["services"]) == sorted(registry.NAMES)
