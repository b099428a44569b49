"""Browsing: sessions, active days, time spent, product views, categories, searches and the
preferred device, channel and category. Anonymous visitors get these too."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.inputs import combined, days_before, within
from seglake.config import FeaturesConfig

ENGAGING_EVENTS = ("product_view", "search", "add_to_cart", "checkout_start")


def _mode(df: DataFrame, column: str, alias: str) -> DataFrame:
    """Most frequent non-null value of ``column`` per customer (ties: alphabetically last)."""
    counts = df.where(F.col(column).isNotNull()).groupBy("customer_key", column).count()
    return counts.groupBy("customer_key").agg(
        F.max_by(column, F.struct("count", column)).alias(alias))


def browsing(events: DataFrame, as_of: dt.date, config: FeaturesConfig) -> DataFrame:
    """One row per customer with events before ``as_of``. A session belongs to a window by its
    first event; counts of events (views, searches) by their own time."""
    events = events.where(F.col("customer_key").isNotNull())
    windows = sorted(config.windows)
    kind = F.col("event_type")
    per_session = []
    for w in windows:
        recent = within(as_of, "event_ts", w)
        per_session += [
            F.count(F.when(recent & (kind == "product_view"), True)).alias(f"_views_{w}"),
            F.count(F.when(recent & (kind == "search"), True)).alias(f"_searches_{w}")]
    sessions = events.groupBy("customer_key", "session_id").agg(
        F.min("event_ts").alias("started_at"), F.max("event_ts").alias("last_at"),
        F.count(F.lit(1)).alias("events"),
        F.coalesce(F.sum("duration_s"), F.lit(0)).alias("seconds"),
        F.max("device_type").alias("device_type"), F.max("source").alias("source"),
        F.max(kind.isin(*ENGAGING_EVENTS)).alias("engaged"), *per_session)
    windowed = []
    for w in windows:
        recent = within(as_of, "started_at", w)
        windowed += [
            F.count(F.when(recent, True)).alias(f"sessions_{w}d"),
            F.round(F.avg(F.when(recent, F.col("seconds"))), 1)
            .alias(f"avg_session_seconds_{w}d"),
            F.round(F.avg(F.when(recent, F.col("events"))), 2).alias(f"pages_per_session_{w}d"),
            F.sum(f"_views_{w}").alias(f"product_views_{w}d"),
            F.sum(f"_searches_{w}").alias(f"searches_{w}d")]
    per_customer = sessions.groupBy("customer_key").agg(
        *windowed,
        days_before(as_of, F.max("last_at")).alias("days_since_last_visit"),
        F.min("started_at").alias("_first_event_at"), F.max("last_at").alias("_last_event_at"),
        F.max("engaged").alias("_browse_engaged"))

    days = events.groupBy("customer_key", F.to_date("event_ts").alias("day")).count()
    active = days.groupBy("customer_key").agg(*[
        F.count(F.when(within(as_of, "day", w), True)).alias(f"active_days_{w}d")
        for w in windows])
    categories = events.where(F.col("category").isNotNull()) \
        .groupBy("customer_key", "category").agg(F.max("event_ts").alias("last_at"))
    distinct = categories.groupBy("customer_key").agg(*[
        F.count(F.when(within(as_of, "last_at", w), True)).alias(f"distinct_categories_{w}d")
        for w in windows])
    profile_window = config.profile_window_days
    recent_sessions = sessions.where(within(as_of, "started_at", profile_window))
    recent_events = events.where(within(as_of, "event_ts", profile_window))
    return combined([per_customer, active, distinct,
                     _mode(recent_sessions, "device_type", "preferred_device"),
                     _mode(recent_sessions, "source", "preferred_channel"),
                     _mode(recent_events, "category", "top_category")])
