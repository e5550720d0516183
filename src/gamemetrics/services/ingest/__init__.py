"""The ingest service: event batches in over HTTP, appended to `player.events.raw`."""
