"""One settings object for every service, read from `GAMEMETRICS_*` environment variables."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# USD value of one unit of each currency. Operators replace the table with GAMEMETRICS_FX_RATES_USD
# (a JSON object); a purchase in a currency missing from the table is dead-lettered, never guessed.
DEFAULT_FX_RATES_USD: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "JPY": Decimal("0.0067"),
    "KRW": Decimal("0.00073"),
    "CNY": Decimal("0.138"),
    "BRL": Decimal("0.18"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "INR": Decimal("0.012"),
    "RUB": Decimal("0.011"),
    "MXN": Decimal("0.058"),
    "SEK": Decimal("0.095"),
    "PLN": Decimal("0.25"),
    "TRY": Decimal("0.031"),
}


# Sub-settings of the Cache, Objects, Vectors and Mail ports. Each reads its own flat
# `GAMEMETRICS_*` variables when a Settings is made (the field's default_factory), so the names stay
# GAMEMETRICS_REDIS_URL and so on; unset URLs mean the embedded adapter.
_ENV = SettingsConfigDict(env_prefix="GAMEMETRICS_", env_file=None, extra="ignore")


class CacheSettings(BaseSettings):
    """Shared cache and rate limits: Redis when a URL is set, else kept in each process."""

    model_config = _ENV

    redis_url: str | None = Field(
        default=None, description="redis://[user:password@]host:port/db (rediss:// for TLS); unset keeps caches"
                                  " and rate limits in each process.")
    redis_namespace: str = Field(default="gamemetrics", description="Prepended to every key, so platforms can"
                                                                    " share one Redis.")
    # A limiter that cannot answer within this time refuses with 503, rather than hold the request.
    redis_timeout_seconds: float = 2.0
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, description="In-process cache: bytes of values kept at most,"
                                                                      " per namespace.")
    rate_limit_max_keys: int = Field(default=100_000, description="In-process rate limits: buckets kept at most"
                                                                  " per limiter.")


class ObjectSettings(BaseSettings):
    """Object storage for archives and exports: S3 when a URL is set, else a directory under data_dir."""

    model_config = _ENV

    archive_url: str | None = Field(
        default=None, description="s3://bucket[/prefix]; unset keeps objects in data_dir/objects.")
    s3_endpoint_url: str | None = Field(default=None, description="An S3-compatible server (MinIO, ...);"
                                                                  " unset is AWS.")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, description="Unset: the AWS_* environment or instance role.")
    s3_secret_access_key: SecretStr | None = None


class VectorSettings(BaseSettings):
    """Vector search: a Qdrant server when a URL is set, else Qdrant's local mode in data_dir/qdrant."""

    model_config = _ENV

    qdrant_url: str | None = Field(default=None, description="http(s)://host:6333; unset runs Qdrant's local"
                                                             " mode in data_dir/qdrant.")
    qdrant_api_key: SecretStr | None = None


class MailSettings(BaseSettings):
    """Outgoing messages: an SMTP server when a host is set, else the outbox table."""

    model_config = _ENV

    smtp_host: str | None = Field(default=None, description="Unset keeps every message in the outbox table.")
    smtp_port: int = 587
    smtp_starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS (port 587).")
    smtp_tls: bool = Field(default=False, description="TLS from the first byte (port 465), instead of STARTTLS.")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = Field(default=None, description="CA bundle for the server; unset uses the"
                                                                " system's.")
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "GameMetrics <noreply@localhost>"


class RetentionSettings(BaseSettings):
    """Retention runs: when the daily run starts and how archives are written."""

    model_config = _ENV

    retention_run_at: str = Field(default="02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                  description="UTC time (HH:MM) of the daily retention run under `gamemetrics up`.")
    retention_part_rows: int = Field(default=1_000_000, ge=1, description="Rows per archived Parquet file at most.")
    retention_zstd_level: int = Field(default=3, ge=1, le=22)


class Settings(BaseSettings):
    """Platform settings; unset infrastructure URLs mean the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="GAMEMETRICS_", env_file=None, extra="ignore")

    data_dir: Path = Path(".data")
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset starts the embedded server in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # Ingest limits
    max_batch_events: int = 500
    max_body_bytes: int = 1024 * 1024
    max_inflated_bytes: int = 8 * 1024 * 1024
    max_properties_bytes: int = 32 * 1024
    max_properties_depth: int = 8
    max_late_seconds: int = 7 * 24 * 3600
    max_future_seconds: int = 600
    key_rate_events_per_second: float = 200_000.0
    key_rate_burst_events: float = 400_000.0
    key_cache_seconds: float = 10.0

    # Bus
    bus_partitions: int = 8
    bus_retention_hours: float = 24.0

    # Kafka: a bootstrap switches every service from the embedded log to Apache Kafka.
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset keeps the bus in the embedded PostgreSQL log."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = Field(default=None, description="CA bundle; unset uses the system's.")
    kafka_ssl_certificate_location: Path | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_topic_prefix: str = Field(default="", description="Prepended to every topic and group id.")
    kafka_replication_factor: int = 3
    kafka_min_insync_replicas: int = 2
    kafka_retention_hours: float = 7 * 24.0
    # A send that Kafka has not acknowledged within this time fails, so ingest answers 503, not hangs.
    kafka_delivery_timeout_ms: int = 10_000
    kafka_linger_ms: float = 5.0
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    kafka_session_timeout_ms: int = 10_000
    kafka_group_instance_id: str | None = Field(
        default=None, description="Static group membership: a restarted member takes its partitions back at once."
    )

    # Processor
    # At most; a batch is what has arrived, so batches only grow this large when the processors are
    # behind. Then each player's rollup rows are updated once for many events, so a larger batch
    # costs the database less per event and each processor more memory.
    processor_batch_events: int = 50_000
    processor_processes: int = Field(
        default=2, ge=1,
        description="Processor processes `gamemetrics up` runs; they share the raw topic's partitions, so Python"
                    " work and the database's overlap on separate cores.",
    )
    processor_poll_interval_ms: float = 50.0
    session_gap_seconds: int = 30 * 60

    fx_rates_usd: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_FX_RATES_USD))

    # Access tokens (JWT). Unset JWKS URL: the users service signs them with the platform's keys,
    # kept sealed in its database and published at /.well-known/jwks.json, and every service
    # verifies them with those keys.
    auth_issuer: str = "gamemetrics"
    auth_audience: str = "gamemetrics"
    auth_jwks_url: str | None = Field(
        default=None, description="An external OIDC provider's JWKS: tokens come from that issuer and are verified"
                                  " with its keys. Unset: the platform's own signing keys, kept in its database.")
    auth_token_ttl_seconds: int = 3600
    auth_leeway_seconds: float = 30.0

    # Analytics API
    analytics_db_role: str = "gamemetrics_app"
    analytics_max_range_days: int = 400
    analytics_max_minute_days: int = 7
    analytics_max_depth: int = 8
    analytics_max_aliases: int = 20
    analytics_max_cost: int = 5000
    analytics_cache_entries: int = 4096
    analytics_live_interval_seconds: float = 1.0
    analytics_pool_size: int = 8
    analytics_statement_timeout_ms: int = 10_000
    # How long a tenant's data version (what keys the answer cache) is trusted before it is read again.
    analytics_version_ttl_ms: int = 100

    # Identity and GDPR (the users service)
    secret_key: SecretStr | None = Field(
        default=None, description="Keys the player tombstones, the audit chain and the sealed signing keys;"
                                  " unset: a random one made once in data_dir/secret.key. Never change it.")
    auth_signing_key_days: float = Field(default=30.0, description="A signing key older than this is rotated.")
    token_rate_per_client_per_second: float = 1.0
    token_rate_client_burst: float = 20.0
    token_rate_per_address_per_second: float = 5.0
    token_rate_address_burst: float = 50.0
    users_pool_size: int = 4
    players_page_max: int = 200

    # The ports' sub-settings (see above).
    cache: CacheSettings = Field(default_factory=CacheSettings)
    objects: ObjectSettings = Field(default_factory=ObjectSettings)
    vectors: VectorSettings = Field(default_factory=VectorSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    def secret_path(self) -> Path:
        """Where the platform secret is kept when `secret_key` is unset."""
        return self.data_dir / "secret.key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
