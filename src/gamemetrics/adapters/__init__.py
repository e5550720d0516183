"""Adapters: one module per piece of infrastructure behind a port."""
