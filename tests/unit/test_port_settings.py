"""The ports' sub-settings read their flat GAMEMETRICS_* variables when the settings are made."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamemetrics.settings import Settings


def test_unset_means_every_embedded_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "ARCHIVE_URL", "QDRANT_URL", "SMTP_HOST"):
        monkeypatch.delenv(f"GAMEMETRICS_{name}", raising=False)
    settings = Settings()
    assert settings.cache.redis_url is None
    assert settings.objects.archive_url is None
    assert settings.vectors.qdrant_url is None
    assert settings.mail.smtp_host is None


def test_flat_environment_names_fill_the_sub_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "GAMEMETRICS_REDIS_URL": "redis://cache.internal:6379/2",
        "GAMEMETRICS_REDIS_NAMESPACE": "staging",
        "GAMEMETRICS_CACHE_MAX_BYTES": "1048576",
        "GAMEMETRICS_ARCHIVE_URL": "s3://archives/gamemetrics",
        "GAMEMETRICS_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "GAMEMETRICS_S3_SECRET_ACCESS_KEY": "s3cret",
        "GAMEMETRICS_QDRANT_URL": "http://qdrant.internal:6333",
        "GAMEMETRICS_SMTP_HOST": "smtp.internal",
        "GAMEMETRICS_SMTP_PORT": "2525",
        "GAMEMETRICS_SMTP_STARTTLS": "false",
        "GAMEMETRICS_SMTP_CA_FILE": "/etc/ssl/mail-ca.pem",
        "GAMEMETRICS_DATA_DIR": "/var/lib/gamemetrics",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.data_dir == Path("/var/lib/gamemetrics")
    assert (settings.cache.redis_url, settings.cache.redis_namespace, settings.cache.cache_max_bytes) == (
        "redis://cache.internal:6379/2", "staging", 1048576)
    assert settings.objects.archive_url == "s3://archives/gamemetrics"
    assert settings.objects.s3_endpoint_url == "http://minio.internal:9000"
    assert settings.objects.s3_secret_access_key is not None
    assert settings.objects.s3_secret_access_key.get_secret_value() == "s3cret"
    assert settings.vectors.qdrant_url == "http://qdrant.internal:6333"
    assert (settings.mail.smtp_host, settings.mail.smtp_port, settings.mail.smtp_starttls) == (
        "smtp.internal", 2525, False)
    assert settings.mail.smtp_ca_file == Path("/etc/ssl/mail-ca.pem")
