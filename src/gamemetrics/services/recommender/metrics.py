"""The recommender's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECOMMENDATIONS = Counter("gamemetrics_recommendations_total", "Recommendation answers given",
                          ["kind", "cached", "fallback"])
# The label set of answers served from the cache, resolved once: cached ones are the hot path.
CACHED_ANSWERS = RECOMMENDATIONS.labels(kind="player", cached="yes", fallback="")
FEEDBACK = Counter("gamemetrics_recommendation_feedback_total",
                   "Feedback on recommended items (shown, clicked, purchased), by the source that picked them",
                   ["kind", "source"])
LATENCY = Histogram("gamemetrics_recommendation_seconds", "Time to answer a recommendation request",
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
SKIPPED = Counter("gamemetrics_recommender_events_skipped_total",
                  "Processed-topic records the recommender could not read (an unknown schema version)")
TRAININGS = Counter("gamemetrics_recommender_trainings_total",
                    "Scheduled trainings of a game's model, by outcome (trained, failed)", ["outcome"])
STALEST_MODEL = Gauge(
    "gamemetrics_recommender_stalest_model_seconds",
    "After each trainer pass: the longest a game's new interactions have waited for a model (since its last training,"
    " or its first interaction when never trained; 0 when every model has them)")
