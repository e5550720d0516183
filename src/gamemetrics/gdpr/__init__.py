"""What every holder of player data shares about GDPR: tombstones, and the erasure fan-out (an
eraser per store holder, each confirming in its own consumer group of `gdpr.requests`)."""
