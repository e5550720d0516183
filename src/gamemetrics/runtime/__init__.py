"""The runtime: the one place that reads settings to make adapters, builds services and runs them.

`adapters` makes the database, pool and bus; `services` builds the registry's services on them and
runs their workers; `host` serves them (`gamemetrics serve`); `signals` makes every process stop
cleanly on SIGTERM and SIGINT.
"""

from gamemetrics.runtime.adapters import EMBEDDED_DATABASE, Platform, connect, database_url, open_bus, topic_partitions

__all__ = ["EMBEDDED_DATABASE", "Platform", "connect", "database_url", "open_bus", "topic_partitions"]
