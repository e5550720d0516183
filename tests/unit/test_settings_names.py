"""Every GAMEMETRICS_* variable keeps its name and its meaning across the sub-settings."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from gamemetrics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# The variables the settings read before they were split into sub-settings, each with the field it
# sets now, a value to set and what the field holds then (never the default, so a variable that
# sets nothing fails).
NAMES: dict[str, tuple[str, str, Any]] = {
    "GAMEMETRICS_DATA_DIR": ("data_dir", "/var/lib/gm", Path("/var/lib/gm")),
    "GAMEMETRICS_DATABASE_URL": ("database_url", "postgresql://db/gm", "postgresql://db/gm"),
    "GAMEMETRICS_HOST": ("host", "0.0.0.0", "0.0.0.0"),
    "GAMEMETRICS_PORT": ("port", "9001", 9001),
    "GAMEMETRICS_LOG_LEVEL": ("log_level", "debug", "debug"),
    "GAMEMETRICS_SECRET_KEY": ("secret_key", "k3y", SecretStr("k3y")),
    "GAMEMETRICS_MAX_BATCH_EVENTS": ("ingest.max_batch_events", "7", 7),
    "GAMEMETRICS_MAX_BODY_BYTES": ("ingest.max_body_bytes", "1001", 1001),
    "GAMEMETRICS_MAX_INFLATED_BYTES": ("ingest.max_inflated_bytes", "1002", 1002),
    "GAMEMETRICS_MAX_PROPERTIES_BYTES": ("ingest.max_properties_bytes", "1003", 1003),
    "GAMEMETRICS_MAX_PROPERTIES_DEPTH": ("ingest.max_properties_depth", "3", 3),
    "GAMEMETRICS_MAX_LATE_SECONDS": ("ingest.max_late_seconds", "60", 60),
    "GAMEMETRICS_MAX_FUTURE_SECONDS": ("ingest.max_future_seconds", "61", 61),
    "GAMEMETRICS_KEY_RATE_EVENTS_PER_SECOND": ("ingest.key_rate_events_per_second", "12.5", 12.5),
    "GAMEMETRICS_KEY_RATE_BURST_EVENTS": ("ingest.key_rate_burst_events", "25", 25.0),
    "GAMEMETRICS_KEY_CACHE_SECONDS": ("ingest.key_cache_seconds", "2.5", 2.5),
    "GAMEMETRICS_BUS_PARTITIONS": ("bus.partitions", "3", 3),
    "GAMEMETRICS_BUS_RETENTION_HOURS": ("bus.retention_hours", "1.5", 1.5),
    "GAMEMETRICS_KAFKA_BOOTSTRAP": ("kafka.bootstrap", "k1:9092,k2:9092", "k1:9092,k2:9092"),
    "GAMEMETRICS_KAFKA_SECURITY_PROTOCOL": ("kafka.security_protocol", "SASL_SSL", "SASL_SSL"),
    "GAMEMETRICS_KAFKA_SASL_MECHANISM": ("kafka.sasl_mechanism", "PLAIN", "PLAIN"),
    "GAMEMETRICS_KAFKA_SASL_USERNAME": ("kafka.sasl_username", "gm", "gm"),
    "GAMEMETRICS_KAFKA_SASL_PASSWORD": ("kafka.sasl_password", "pw", SecretStr("pw")),
    "GAMEMETRICS_KAFKA_SSL_CA_LOCATION": ("kafka.ssl_ca_location", "/etc/ca.pem", Path("/etc/ca.pem")),
    "GAMEMETRICS_KAFKA_SSL_CERTIFICATE_LOCATION": ("kafka.ssl_certificate_location", "/etc/c.pem",
                                                   Path("/etc/c.pem")),
    "GAMEMETRICS_KAFKA_SSL_KEY_LOCATION": ("kafka.ssl_key_location", "/etc/k.pem", Path("/etc/k.pem")),
    "GAMEMETRICS_KAFKA_SSL_KEY_PASSWORD": ("kafka.ssl_key_password", "kp", SecretStr("kp")),
    "GAMEMETRICS_KAFKA_TOPIC_PREFIX": ("kafka.topic_prefix", "prod.", "prod."),
    "GAMEMETRICS_KAFKA_REPLICATION_FACTOR": ("kafka.replication_factor", "5", 5),
    "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS": ("kafka.min_insync_replicas", "4", 4),
    "GAMEMETRICS_KAFKA_RETENTION_HOURS": ("kafka.retention_hours", "12", 12.0),
    "GAMEMETRICS_KAFKA_DELIVERY_TIMEOUT_MS": ("kafka.delivery_timeout_ms", "1234", 1234),
    "GAMEMETRICS_KAFKA_LINGER_MS": ("kafka.linger_ms", "0.5", 0.5),
    "GAMEMETRICS_KAFKA_COMPRESSION": ("kafka.compression", "zstd", "zstd"),
    "GAMEMETRICS_KAFKA_SESSION_TIMEOUT_MS": ("kafka.session_timeout_ms", "4321", 4321),
    "GAMEMETRICS_KAFKA_GROUP_INSTANCE_ID": ("kafka.group_instance_id", "proc-a", "proc-a"),
    "GAMEMETRICS_PROCESSOR_BATCH_EVENTS": ("processor.batch_events", "99", 99),
    "GAMEMETRICS_PROCESSOR_PROCESSES": ("processor.processes", "5", 5),
    "GAMEMETRICS_PROCESSOR_POLL_INTERVAL_MS": ("processor.poll_interval_ms", "7.5", 7.5),
    "GAMEMETRICS_SESSION_GAP_SECONDS": ("processor.session_gap_seconds", "90", 90),
    "GAMEMETRICS_FX_RATES_USD": ("processor.fx_rates_usd", '{"USD": "1", "XTS": "2.5"}',
                                 {"USD": Decimal("1"), "XTS": Decimal("2.5")}),
    "GAMEMETRICS_AUTH_ISSUER": ("auth.issuer", "https://gm.example", "https://gm.example"),
    "GAMEMETRICS_AUTH_AUDIENCE": ("auth.audience", "gm-api", "gm-api"),
    "GAMEMETRICS_AUTH_JWKS_URL": ("auth.jwks_url", "https://idp/jwks", "https://idp/jwks"),
    "GAMEMETRICS_AUTH_TOKEN_TTL_SECONDS": ("auth.token_ttl_seconds", "600", 600),
    "GAMEMETRICS_AUTH_LEEWAY_SECONDS": ("auth.leeway_seconds", "5", 5.0),
    "GAMEMETRICS_AUTH_SIGNING_KEY_DAYS": ("auth.signing_key_days", "2", 2.0),
    "GAMEMETRICS_ANALYTICS_DB_ROLE": ("analytics.db_role", "gm_reader", "gm_reader"),
    "GAMEMETRICS_ANALYTICS_MAX_RANGE_DAYS": ("analytics.max_range_days", "40", 40),
    "GAMEMETRICS_ANALYTICS_MAX_MINUTE_DAYS": ("analytics.max_minute_days", "2", 2),
    "GAMEMETRICS_ANALYTICS_MAX_DEPTH": ("analytics.max_depth", "4", 4),
    "GAMEMETRICS_ANALYTICS_MAX_ALIASES": ("analytics.max_aliases", "6", 6),
    "GAMEMETRICS_ANALYTICS_MAX_COST": ("analytics.max_cost", "77", 77),
    "GAMEMETRICS_ANALYTICS_CACHE_ENTRIES": ("analytics.cache_entries", "16", 16),
    "GAMEMETRICS_ANALYTICS_LIVE_INTERVAL_SECONDS": ("analytics.live_interval_seconds", "3", 3.0),
    "GAMEMETRICS_ANALYTICS_POOL_SIZE": ("analytics.pool_size", "3", 3),
    "GAMEMETRICS_ANALYTICS_STATEMENT_TIMEOUT_MS": ("analytics.statement_timeout_ms", "500", 500),
    "GAMEMETRICS_ANALYTICS_VERSION_TTL_MS": ("analytics.version_ttl_ms", "0", 0),
    "GAMEMETRICS_TOKEN_RATE_PER_CLIENT_PER_SECOND": ("users.token_rate_per_client_per_second", "0.5", 0.5),
    "GAMEMETRICS_TOKEN_RATE_CLIENT_BURST": ("users.token_rate_client_burst", "2", 2.0),
    "GAMEMETRICS_TOKEN_RATE_PER_ADDRESS_PER_SECOND": ("users.token_rate_per_address_per_second", "0.25", 0.25),
    "GAMEMETRICS_TOKEN_RATE_ADDRESS_BURST": ("users.token_rate_address_burst", "3", 3.0),
    "GAMEMETRICS_USERS_POOL_SIZE": ("users.pool_size", "9", 9),
    "GAMEMETRICS_PLAYERS_PAGE_MAX": ("users.players_page_max", "25", 25),
    "GAMEMETRICS_REDIS_URL": ("cache.redis_url", "redis://r:6379/1", "redis://r:6379/1"),
    "GAMEMETRICS_REDIS_NAMESPACE": ("cache.redis_namespace", "stage", "stage"),
    "GAMEMETRICS_REDIS_TIMEOUT_SECONDS": ("cache.redis_timeout_seconds", "0.5", 0.5),
    "GAMEMETRICS_CACHE_MAX_BYTES": ("cache.cache_max_bytes", "1024", 1024),
    "GAMEMETRICS_RATE_LIMIT_MAX_KEYS": ("cache.rate_limit_max_keys", "10", 10),
    "GAMEMETRICS_ARCHIVE_URL": ("objects.archive_url", "s3://b/p", "s3://b/p"),
    "GAMEMETRICS_S3_ENDPOINT_URL": ("objects.s3_endpoint_url", "http://minio:9000", "http://minio:9000"),
    "GAMEMETRICS_S3_REGION": ("objects.s3_region", "eu-west-1", "eu-west-1"),
    "GAMEMETRICS_S3_ACCESS_KEY_ID": ("objects.s3_access_key_id", "AKIA", "AKIA"),
    "GAMEMETRICS_S3_SECRET_ACCESS_KEY": ("objects.s3_secret_access_key", "s3", SecretStr("s3")),
    "GAMEMETRICS_S3_RETRY_SECONDS": ("objects.s3_retry_seconds", "5", 5.0),
    "GAMEMETRICS_QDRANT_URL": ("vectors.qdrant_url", "http://q:6333", "http://q:6333"),
    "GAMEMETRICS_QDRANT_API_KEY": ("vectors.qdrant_api_key", "qk", SecretStr("qk")),
    "GAMEMETRICS_SMTP_HOST": ("mail.smtp_host", "smtp.example", "smtp.example"),
    "GAMEMETRICS_SMTP_PORT": ("mail.smtp_port", "2525", 2525),
    "GAMEMETRICS_SMTP_STARTTLS": ("mail.smtp_starttls", "false", False),
    "GAMEMETRICS_SMTP_TLS": ("mail.smtp_tls", "true", True),
    "GAMEMETRICS_SMTP_USERNAME": ("mail.smtp_username", "mailer", "mailer"),
    "GAMEMETRICS_SMTP_PASSWORD": ("mail.smtp_password", "mp", SecretStr("mp")),
    "GAMEMETRICS_SMTP_CA_FILE": ("mail.smtp_ca_file", "/etc/mail-ca.pem", Path("/etc/mail-ca.pem")),
    "GAMEMETRICS_SMTP_TIMEOUT_SECONDS": ("mail.smtp_timeout_seconds", "3", 3.0),
    "GAMEMETRICS_SMTP_CONNECTIONS": ("mail.smtp_connections", "3", 3),
    "GAMEMETRICS_MAIL_FROM": ("mail.mail_from", "GM <gm@example.org>", "GM <gm@example.org>"),
}

# Sub-settings that existed when the names above were listed; a concern added later brings names
# of its own, which must not clash with these.
LISTED = {"ingest", "bus", "kafka", "processor", "auth", "analytics", "users", "cache", "objects", "vectors", "mail"}

# Documented GAMEMETRICS_* names that are not settings: options of CLI commands, where the browser
# tests leave their screenshots, and what the chaos runner hands to each Chaos Toolkit experiment.
NOT_SETTINGS = {"GAMEMETRICS_WRITE_KEY", "GAMEMETRICS_TEST_OUTPUT",
                "GAMEMETRICS_CHAOS_RUN_DIR", "GAMEMETRICS_CHAOS_SEED", "GAMEMETRICS_CHAOS_DURATION"}


def env_names(model: type[BaseSettings], path: str = "") -> dict[str, str]:
    """Each variable `model` reads, with the dotted path of the field it sets."""
    names: dict[str, str] = {}
    prefix = str(model.model_config.get("env_prefix", ""))
    for name, field in model.model_fields.items():
        dotted = f"{path}{name}"
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseSettings):
            for variable, inner in env_names(kind, f"{dotted}.").items():
                assert variable not in names, f"{variable} is read by {names[variable]} and {inner}"
                names[variable] = inner
            continue
        alias = field.validation_alias
        assert alias is None or isinstance(alias, str), f"{dotted}: one variable name per field"
        variable = (alias or f"{prefix}{name}").upper()
        assert variable not in names, f"{variable} is read by {names[variable]} and {dotted}"
        names[variable] = dotted
    return names


def documented_names() -> set[str]:
    """The GAMEMETRICS_* names the README, docs, sources and tests mention."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py"),
             *(ROOT / "tests").rglob("*.py")]
    found: set[str] = set()
    for path in files:
        if path != Path(__file__).resolve():
            found |= set(re.findall(r"\bGAMEMETRICS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    return found


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("GAMEMETRICS_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_no_variable_was_lost_or_renamed() -> None:
    names = env_names(Settings)
    assert {name: names.get(name) for name in NAMES} == {name: path for name, (path, _, _) in NAMES.items()}


def test_every_documented_name_is_a_setting() -> None:
    documented = documented_names()
    assert {"GAMEMETRICS_KAFKA_BOOTSTRAP", "GAMEMETRICS_DATABASE_URL"} <= documented
    assert sorted(documented - set(env_names(Settings)) - NOT_SETTINGS) == []


def test_no_sub_settings_field_shares_a_settings_variable() -> None:
    # Settings also reads GAMEMETRICS_<FIELD> for a sub-settings field (as JSON): it must name no setting.
    subs = {f"GAMEMETRICS_{name.upper()}" for name, info in Settings.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)}
    assert {name.removeprefix("GAMEMETRICS_").lower() for name in subs} >= LISTED
    assert subs & set(env_names(Settings)) == set()


def leaves(settings: BaseSettings, path: str = "") -> dict[str, Any]:
    """Every setting's value by its dotted path."""
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseSettings):
            values |= leaves(value, f"{path}{name}.")
        else:
            values[f"{path}{name}"] = value
    return values


@pytest.mark.parametrize("variable", sorted(NAMES))
def test_each_variable_sets_its_field_and_no_other(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    dotted, raw, expected = NAMES[variable]
    default = leaves(Settings())
    assert default[dotted] != expected
    clean_env.setenv(variable, raw)
    changed = leaves(Settings())
    assert changed[dotted] == expected
    assert {path for path in default if changed[path] != default[path]} == {dotted}


def test_updated_merges_sub_settings_and_refuses_unknown_fields(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url="postgresql://db/gm")
    moved = settings.updated(kafka={"bootstrap": "k:9092", "linger_ms": 1.0}, port=9100)
    assert (moved.kafka.bootstrap, moved.kafka.linger_ms, moved.port) == ("k:9092", 1.0, 9100)
    assert moved.kafka.topic_prefix == settings.kafka.topic_prefix and moved.database_url == settings.database_url
    assert settings.kafka.bootstrap is None
    with pytest.raises(ValueError, match="kafka_bootstrap"):
        settings.updated(kafka_bootstrap="k:9092")
    with pytest.raises(ValueError, match="bootstrap_servers"):
        settings.updated(kafka={"bootstrap_servers": "k:9092"})
