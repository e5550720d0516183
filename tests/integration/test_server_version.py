"""Migrations refuse a server older than the schema needs, saying which version it needs."""

from __future__ import annotations

import pytest

from gamemetrics import migrations


def test_an_older_server_is_refused_before_any_migration_runs(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "MIN_SERVER_VERSION", 990000)  # the test server is older than "99"
    with pytest.raises(migrations.UnsupportedServer, match=r"needs PostgreSQL 99 or later; .* is 18\.\d+"):
        migrations.upgrade(database_url)
