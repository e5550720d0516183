"""What every holder of player data shares about GDPR: tombstones and erasure requests."""
