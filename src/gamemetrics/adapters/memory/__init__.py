"""In-process adapters for the Cache port: the embedded default."""
