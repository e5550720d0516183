"""In-process adapters of the Cache port: the embedded default."""
