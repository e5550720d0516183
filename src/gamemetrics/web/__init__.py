"""HTTP plumbing every service shares: refusals, bearer challenges, health, metrics and the caller."""
