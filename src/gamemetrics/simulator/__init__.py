"""Simulated player traffic: seeded journeys (`model`), delivery over HTTP (`sender`), the command (`run`)."""
