"""One settings object for every service, read from `GAMEMETRICS_*` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
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


# Sub-settings, one per concern. Each reads its own flat `GAMEMETRICS_*` variables when a Settings
# is made (the field's default_factory), so the names stay GAMEMETRICS_REDIS_URL and so on whatever
# the class; unset URLs mean the embedded adapter.
_ENV = SettingsConfigDict(env_prefix="GAMEMETRICS_", env_file=None, extra="ignore")


def _env(prefix: str) -> SettingsConfigDict:
    """Sub-settings whose fields are named without `prefix`, which their variables keep."""
    # populate_by_name: a field whose variable has another prefix (validation_alias) is still made
    # and copied by its field name.
    return SettingsConfigDict(env_prefix=f"GAMEMETRICS_{prefix}", env_file=None, extra="ignore",
                              populate_by_name=True)


class IngestSettings(BaseSettings):
    """What ingest takes: request and event limits, write-key rates and how long a resolved key is trusted."""

    model_config = _env("")

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
    refusal_flush_seconds: float = Field(default=5.0, gt=0, description="How often each ingest process adds"
                                         " its counts of refused events to the data-quality page's table.")


class BusSettings(BaseSettings):
    """The event topics, on either bus: partitions, and the embedded log's retention."""

    model_config = _env("BUS_")

    partitions: int = 8
    retention_hours: float = 24.0


class KafkaSettings(BaseSettings):
    """Apache Kafka: a bootstrap switches every service from the embedded log to it."""

    model_config = _env("KAFKA_")

    bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset keeps the bus in the embedded PostgreSQL log."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(default=None, description="CA bundle; unset uses the system's.")
    ssl_certificate_location: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    topic_prefix: str = Field(default="", description="Prepended to every topic and group id.")
    replication_factor: int = 3
    min_insync_replicas: int = 2
    retention_hours: float = 7 * 24.0
    # A send that Kafka has not acknowledged within this time fails, so ingest answers 503, not hangs.
    delivery_timeout_ms: int = 10_000
    linger_ms: float = 5.0
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    session_timeout_ms: int = 10_000
    group_instance_id: str | None = Field(
        default=None, description="Static group membership: a restarted member takes its partitions back at once."
    )


class ProcessorSettings(BaseSettings):
    """The processor: its batches and processes, and how it enriches events (sessions, USD values)."""

    model_config = _env("PROCESSOR_")

    # At most; a batch is what has arrived, so batches only grow this large when the processors are
    # behind. Then each player's rollup rows are updated once for many events, so a larger batch
    # costs the database less per event and each processor more memory.
    batch_events: int = 50_000
    processes: int = Field(
        default=2, ge=1,
        description="Processor processes `gamemetrics up` runs; they share the raw topic's partitions, so Python"
                    " work and the database's overlap on separate cores.",
    )
    poll_interval_ms: float = 50.0
    session_gap_seconds: int = Field(default=30 * 60, validation_alias="GAMEMETRICS_SESSION_GAP_SECONDS")
    fx_rates_usd: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_FX_RATES_USD),
                                             validation_alias="GAMEMETRICS_FX_RATES_USD")


class AuthSettings(BaseSettings):
    """Access tokens (JWT): who issues them, for whom, how long they and their signing keys live."""

    # Unset JWKS URL: the users service signs them with the platform's keys, kept sealed in its
    # database and published at /.well-known/jwks.json, and every service verifies them with those keys.
    model_config = _env("AUTH_")

    issuer: str = "gamemetrics"
    audience: str = "gamemetrics"
    jwks_url: str | None = Field(
        default=None, description="An external OIDC provider's JWKS: tokens come from that issuer and are verified"
                                  " with its keys. Unset: the platform's own signing keys, kept in its database.")
    token_ttl_seconds: int = 3600
    leeway_seconds: float = 30.0
    signing_key_days: float = Field(default=30.0, description="A signing key older than this is rotated.")


class AnalyticsSettings(BaseSettings):
    """The analytics API: query limits, its answer cache, its pool and role."""

    model_config = _env("ANALYTICS_")

    db_role: str = "gamemetrics_app"
    max_range_days: int = 400
    max_minute_days: int = 7
    max_depth: int = 8
    max_aliases: int = 20
    max_cost: int = 5000
    cache_entries: int = 4096
    live_interval_seconds: float = 1.0
    pool_size: int = 8
    statement_timeout_ms: int = 10_000
    # How long a tenant's data version (what keys the answer cache) is trusted before it is read again.
    version_ttl_ms: int = 100


class UsersSettings(BaseSettings):
    """Identity and GDPR (the users service): token request rates, its pool, the players' page size."""

    model_config = _env("")

    token_rate_per_client_per_second: float = 1.0
    token_rate_client_burst: float = 20.0
    token_rate_per_address_per_second: float = 5.0
    token_rate_address_burst: float = 50.0
    pool_size: int = Field(default=4, validation_alias="GAMEMETRICS_USERS_POOL_SIZE")
    players_page_max: int = 200
    operator_state_seconds: float = Field(default=2.0, ge=0, description="An operator disabled or given another"
                                          " role has their tokens refused by the users and analytics APIs"
                                          " within this time.")


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
    s3_retry_seconds: float = Field(
        default=60.0, gt=0, le=300,
        description="How long a failed S3 request (5xx answer, dropped connection, timeout) is retried, with"
                    " backoff, before the call fails.")


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
    smtp_connections: int = Field(default=8, ge=1, description="SMTP sessions open at once to a server, each"
                                                               " carrying many messages.")
    mail_from: str = "GameMetrics <noreply@localhost>"
    smtp_fallback_host: str | None = Field(default=None, description="A second SMTP server that takes email over"
                                                                    " when the first keeps failing; same port,"
                                                                    " TLS and login settings.")
    smtp_fallback_port: int | None = Field(default=None, description="Unset: GAMEMETRICS_SMTP_PORT.")
    twilio_account_sid: str | None = Field(default=None, description="SMS through a Twilio-compatible API when"
                                                                     " set; unset keeps SMS in the outbox table.")
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = Field(default=None, description="The sender number (E.164) or messaging service.")
    twilio_base_url: str = "https://api.twilio.com"
    fcm_project_id: str | None = Field(default=None, description="Mobile push through FCM HTTP v1 when set; unset"
                                                                 " keeps push in the outbox table.")
    fcm_credentials_file: Path | None = Field(default=None, description="The service account's JSON key file.")
    fcm_base_url: str = "https://fcm.googleapis.com"
    apns_key_file: Path | None = Field(default=None, description="Push to Apple devices through APNs when set:"
                                                                 " the team's .p8 signing key.")
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = Field(default=None, description="The app's bundle id.")
    apns_base_url: str = "https://api.push.apple.com"
    apns_ca_file: Path | None = Field(default=None, description="CA bundle for APNs; unset uses the system's.")
    vapid_private_key: SecretStr | None = Field(default=None, description="Web Push through the browsers' push"
                                                                          " services when set (a PEM or base64url"
                                                                          " P-256 key); unset keeps web_push in"
                                                                          " the outbox table.")
    vapid_subject: str | None = Field(default=None, description="mailto: or https: contact for push services.")


class NotifierSettings(BaseSettings):
    """The notifier: its pool, how deliveries are retried, and the links it puts in messages."""

    model_config = _ENV

    notifier_pool_size: int = 4
    notify_max_attempts: int = Field(default=6, description="Attempts per channel before a delivery is given up"
                                                            " (dead-lettered).")
    notify_fallback_after: int = Field(default=2, description="Failed attempts on a channel's first provider after"
                                                              " which its fallback provider takes over.")
    notify_backoff_initial_seconds: float = 2.0
    notify_backoff_cap_seconds: float = 600.0
    notify_send_timeout_seconds: float = Field(default=20.0, description="A provider that has not answered by"
                                                                         " then has failed (transiently).")
    notify_lease_seconds: float = Field(default=60.0, description="A delivery claimed by a notifier that died is"
                                                                  " tried again after this long; keep it above"
                                                                  " the send timeout.")
    notify_poll_seconds: float = Field(default=0.5, description="How long the delivery worker sleeps when"
                                                                " nothing is due.")
    notify_batch_size: int = 200
    notify_schedule_seconds: float = Field(default=60.0, description="How often the inactivity rules look for"
                                                                     " players who went quiet.")
    notify_max_body_bytes: int = 64 * 1024
    player_token_ttl_seconds: int = Field(default=24 * 3600, description="How long a player token (the inbox's"
                                                                         " credential) is valid.")
    public_url: str = Field(default="http://127.0.0.1:8000", description="The platform's base URL as players"
                                                                          " reach it (unsubscribe links).")


class DashboardSettings(BaseSettings):
    """The dashboard: where it reaches the platform's APIs, its sessions and its live feed."""

    model_config = _ENV

    dashboard_api_url: str | None = Field(
        default=None, description="Base URL of the platform's HTTP APIs (users, analytics) the dashboard calls;"
                                  " unset: this host's own address and port.")
    dashboard_session_minutes: float = Field(default=60.0, description="A dashboard session ends this long"
                                                                         " after its login.")
    dashboard_secure_cookie: bool | None = Field(
        default=None, description="Mark the session cookie Secure; unset: when the request came over https.")
    dashboard_live_group: str = Field(
        default="dashboard.live", description="Consumer group of the live feed; each dashboard replica needs"
                                              " its own (e.g. the pod name), since each shows every event.")
    dashboard_live_minutes: int = Field(default=60, description="Minutes of per-minute counts the live panel"
                                                                " keeps in memory.")
    dashboard_tail_events: int = Field(default=200, description="Latest processed events kept for the tail.")
    dashboard_operator_check_seconds: float = Field(
        default=2.0, ge=0, description="A session asks the users API for its operator's state at most this often;"
                                       " a disabled operator or one given another role is logged out.")


class RecommenderSettings(BaseSettings):
    """The recommender: how it trains, how long it keeps answers, what counts as recent."""

    model_config = _ENV

    recommender_algorithm: Literal["als", "bpr"] = Field(default="als", description="Matrix factorisation of"
                                                         " the `implicit` library: alternating least squares or"
                                                         " Bayesian personalised ranking.")
    recommender_factors: int = Field(default=16, ge=2, le=512)
    recommender_iterations: int = Field(default=15, ge=1, le=1000)
    recommender_regularization: float = 0.05
    recommender_retrain_seconds: float = Field(default=3600.0, description="A game with new interactions is"
                                                                          " retrained at least this often.")
    recommender_retrain_interactions: int = Field(default=10_000, description="...and as soon as this many new"
                                                                               " interactions arrived.")
    recommender_check_seconds: float = Field(default=30.0, description="How often the trainer looks for work.")
    recommender_cache_seconds: float = Field(default=300.0, description="Answers are kept at most this long.")
    recommender_popular_days: float = Field(default=14.0, description="The window of cold-start popularity.")
    recommender_batch_events: int = 5_000


class RetentionSettings(BaseSettings):
    """Retention runs: when the daily run starts and how archives are written."""

    model_config = _ENV

    retention_run_at: str = Field(default="02:00", pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|off)$",
                                  description="UTC time (HH:MM) of the service's daily retention run, or `off`"
                                  " where a scheduler runs `gamemetrics retention run` instead.")
    retention_part_rows: int = Field(default=1_000_000, ge=1, description="Rows per archived Parquet file at most.")
    retention_zstd_level: int = Field(default=3, ge=1, le=22)
    retention_refusal_days: int = Field(default=90, ge=1, le=36_500, description="Days of ingest's refusal counts"
                                        " (the data-quality page) each daily run keeps.")


class RestartSettings(BaseSettings):
    """How `gamemetrics up` restarts a service process that died, as a pod's restart policy would."""

    model_config = _env("RESTART_")

    backoff_seconds: float = Field(default=0.5, gt=0, description="Wait before the first restart of a process;"
                                                                   " doubled for each restart in a row.")
    backoff_max_seconds: float = Field(default=30.0, gt=0, description="The longest wait between restarts.")
    # A process that ran this long was healthy: its next death starts the backoff and the count anew.
    stable_seconds: float = Field(default=10.0, gt=0)
    max_crashes: int = Field(default=5, ge=1, description="Deaths in a row, each before stable_seconds, after"
                                                          " which `up` stops with the reason instead of restarting.")


class TracingSettings(BaseSettings):
    """Where OpenTelemetry spans go: an OTLP/HTTP collector, or nowhere (no spans are made then)."""

    model_config = _env("")

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="Base URL of an OTLP/HTTP collector (spans go to <url>/v1/traces); unset: the"
                                  " standard OTEL_EXPORTER_OTLP_ENDPOINT, and without either nothing is traced.")
    # The variable every OpenTelemetry SDK reads, honoured too so an operator's usual setup works.
    standard_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    standard_traces_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

    @property
    def traces_url(self) -> str | None:
        """The full URL spans are posted to, or None when tracing is off."""
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        if self.standard_traces_endpoint:
            return self.standard_traces_endpoint
        if self.standard_endpoint:
            return self.standard_endpoint.rstrip("/") + "/v1/traces"
        return None


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

    secret_key: SecretStr | None = Field(
        default=None, description="Keys the player tombstones, the audit chain and the sealed signing keys;"
                                  " unset: a random one made once in data_dir/secret.key. Never change it.")

    # The concerns' sub-settings (see above).
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    users: UsersSettings = Field(default_factory=UsersSettings)

    # The ports' sub-settings (see above).
    cache: CacheSettings = Field(default_factory=CacheSettings)
    objects: ObjectSettings = Field(default_factory=ObjectSettings)
    vectors: VectorSettings = Field(default_factory=VectorSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    recommender: RecommenderSettings = Field(default_factory=RecommenderSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    restarts: RestartSettings = Field(default_factory=RestartSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    def secret_path(self) -> Path:
        """Where the platform secret is kept when `secret_key` is unset."""
        return self.data_dir / "secret.key"

    def updated(self, **changes: object) -> Settings:
        """A copy with `changes`; a mapping given for a sub-settings changes those of its fields only."""
        update: dict[str, object] = {}
        for name, value in changes.items():
            if name not in type(self).model_fields:
                raise ValueError(f"Settings has no field {name!r}")
            current = getattr(self, name)
            if isinstance(current, BaseSettings) and isinstance(value, Mapping):
                unknown = set(value) - set(type(current).model_fields)
                if unknown:
                    raise ValueError(f"Settings.{name} has no field {', '.join(sorted(unknown))}")
                value = current.model_copy(update=dict(value))
            update[name] = value
        return self.model_copy(update=update)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
