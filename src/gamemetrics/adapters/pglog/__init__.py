"""The embedded Bus adapter: ordered logs per partition in PostgreSQL tables."""

from gamemetrics.adapters.pglog.bus import PgLogBus

__all__ = ["PgLogBus"]
