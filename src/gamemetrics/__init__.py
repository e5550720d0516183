"""GameMetrics Pro: real-time player analytics for game studios."""

__version__ = "0.1.0"
