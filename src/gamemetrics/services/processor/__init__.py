"""The processor: raw events in, validated and enriched events, rollups and dead letters out."""
