"""Intent: weak and strong purchase signals in the intent window, combined into a score."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.inputs import combined, within
from seglake.config import INTENT_SIGNALS, FeaturesConfig


def signal_columns(config: FeaturesConfig) -> dict[str, str]:
    """Intent signal name -> its feature column for the configured window."""
    return {s: f"{s}_{config.intent_window_days}d" for s in INTENT_SIGNALS}


def intent(events: DataFrame, as_of: dt.date, config: FeaturesConfig) -> DataFrame:
    """Signal counts per customer with events in the intent window."""
    cols = signal_columns(config)
    recent = events.where(F.col("customer_key").isNotNull()
                          & within(as_of, "event_ts", config.intent_window_days))
    kind = F.col("event_type")
    page = F.lower(F.coalesce("page", F.lit("")))
    is_contact = F.lit(False)
    for prefix in config.contact_pages:
        is_contact = is_contact | page.startswith(prefix.lower())
    products = recent.where(F.col("product_id").isNotNull()) \
        .groupBy("customer_key", "product_id").agg(
            F.count(F.when(kind == "product_view", True)).alias("views"),
            F.count(F.when(kind == "add_to_cart", True)).alias("adds"))
    repeat = products.groupBy("customer_key").agg(
        F.count(F.when((F.col("views") >= 2) & (F.col("adds") == 0), True))
        .alias(cols["repeat_product_views"]))
    counts = recent.groupBy("customer_key").agg(
        F.count(F.when((kind == "product_view") & (F.col("duration_s") >= config.dwell_seconds),
                       True)).alias(cols["long_dwell_views"]),
        (F.countDistinct(F.to_date("event_ts")) - 1).alias(cols["return_visits"]),
        F.count(F.when(kind == "add_to_cart", True)).alias(cols["add_to_carts"]),
        F.count(F.when(kind == "checkout_start", True)).alias(cols["checkout_starts"]),
        F.count(F.when(is_contact, True)).alias(cols["contact_requests"]))
    return combined([counts, repeat])


def intent_score(config: FeaturesConfig) -> Column:
    """100 * (1 - exp(-weighted signals / scale)): 0 without signals, towards 100 with many."""
    cols = signal_columns(config)
    weighted = F.lit(0.0)
    for signal, weight in config.intent_weights.items():
        weighted = weighted + F.lit(weight) * F.coalesce(F.col(cols[signal]), F.lit(0))
    return F.round(100 * (1 - F.exp(-weighted / config.intent_scale)), 2)
