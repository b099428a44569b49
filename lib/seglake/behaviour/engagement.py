"""The composite engagement score (0-100) and the lifecycle columns: tenure, cohort."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from seglake.config import FeaturesConfig


def components(config: FeaturesConfig) -> dict[str, Column]:
    """Each component in 0..1 from feature columns of the engagement window; missing -> 0."""
    w = config.engagement_window_days
    return {
        "recency": F.coalesce(F.pow(F.lit(0.5), F.col("days_since_last_activity")
                                    / config.engagement_halflife_days), F.lit(0.0)),
        "purchases": F.least(F.col(f"frequency_{w}d") / config.engagement_orders_target,
                             F.lit(1.0)),
        "browsing": F.least(F.col(f"sessions_{w}d") / config.engagement_sessions_target,
                            F.lit(1.0)),
        "email": F.coalesce(F.col(f"email_open_rate_{w}d"), F.lit(0.0)),
        "intent": F.col("intent_score") / 100,
    }


def engagement_score(config: FeaturesConfig) -> Column:
    """100 * weighted mean of the components (weights from config)."""
    parts = components(config)
    total = sum(config.engagement_weights.values())
    weighted = F.lit(0.0)
    for name, weight in config.engagement_weights.items():
        weighted = weighted + F.lit(weight) * parts[name]
    return F.round(100 * weighted / total, 2)
