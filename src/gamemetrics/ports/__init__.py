"""Ports: the small interfaces services depend on instead of client libraries."""
