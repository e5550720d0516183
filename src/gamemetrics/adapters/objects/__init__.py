"""Adapters of the Objects port: a local directory (the embedded default) and S3."""
