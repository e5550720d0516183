"""Player events: the wire model, per-type schemas, validation and enrichment (pure functions)."""
