"""The Vectors port on Qdrant: local mode (the embedded default) or a Qdrant server."""
