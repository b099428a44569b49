"""Bots and outlier customers, flagged with the reason (``gold.customer_flags``).

Clusters and scores fitted on crawlers or bulk buyers learn their extremes, so the segment and
score stages leave flagged customers out of fitting (they are still assigned and scored).

- A **bot** is a visitor whose events in the window show at least ``bot_min_signals`` of:
  ``volume`` (many events per session), ``regular`` (clockwork seconds between events: people's
  gaps vary by 0.3 of their mean and more) and ``no_products`` (no product view, cart or order).
- An **outlier** is a buyer far out on an order measure (mean order value, mean units per order
  line): a robust z-score of ``log1p`` of the measure over all buyers (median and MAD, the mean
  absolute deviation where the MAD is 0) of at least ``outlier_z``, and the measure at least
  ``outlier_ratio`` times the buyers' median. One aggregation per measure at any size, and a
  reason a person can read; see docs/flags.md for why not an isolation forest.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from seglake.behaviour.inputs import cutoff, not_cancelled, within
from seglake.config import FlagsConfig

PRODUCT_EVENTS = ("product_view", "add_to_cart", "remove_from_cart", "checkout_start",
                  "purchase")
COLUMNS = ("customer_key", "flag", "reason", "score")


def bot_flags(events: DataFrame, as_of: dt.date, conf: FlagsConfig) -> DataFrame:
    """``COLUMNS`` of every visitor whose events in the window look like a bot's."""
    df = events.where(F.col("customer_key").isNotNull()
                      & within(as_of, "event_ts", conf.window_days))
    t = F.col("event_ts").cast("double")
    session = Window.partitionBy("customer_key", "session_id").orderBy("event_ts")
    df = df.select("customer_key", "session_id", "event_type",
                   (t - F.lag(t).over(session)).alias("gap"))
    per = df.groupBy("customer_key").agg(
        F.count(F.lit(1)).alias("events"), F.countDistinct("session_id").alias("sessions"),
        F.count("gap").alias("gaps"), F.avg("gap").alias("gap_mean"),
        F.stddev_samp("gap").alias("gap_sd"),
        F.count(F.when(F.col("event_type").isin(*PRODUCT_EVENTS), True)).alias("products"))
    per = per.where(F.col("events") >= conf.bot_min_events)
    per_session = F.col("events") / F.greatest(F.col("sessions"), F.lit(1))
    cv = F.when(F.col("gap_mean") > 0, F.col("gap_sd") / F.col("gap_mean"))
    signals = {
        "volume": (per_session >= conf.bot_events_per_session,
                   F.format_string("volume: %.1f events per session", per_session)),
        "regular": ((F.col("gaps") >= conf.bot_min_gaps) & (cv <= conf.bot_max_gap_cv),
                    F.format_string("regular: %d gaps of %.1f s vary by %.2f", F.col("gaps"),
                                    F.col("gap_mean"), cv)),
        "no_products": (F.col("products") == 0,
                        F.format_string("no_products: none among %d events", F.col("events"))),
    }
    on = [F.coalesce(when, F.lit(False)) for when, _ in signals.values()]
    count = sum((c.cast("int") for c in on), F.lit(0))
    reason = F.concat_ws("; ", *[F.when(c, text) for c, (_, text) in zip(on, signals.values(),
                                                                          strict=True)])
    return per.where(count >= conf.bot_min_signals).select(
        "customer_key", F.lit("bot").alias("flag"), reason.alias("reason"),
        (count / len(signals)).cast("double").alias("score"))


def order_measures(orders: DataFrame, lines: DataFrame | None, as_of: dt.date) -> DataFrame:
    """``customer_key``, ``measure``, ``value``: each buyer's mean order value and, with order
    lines, mean units per line, over orders not cancelled before ``as_of``."""
    done = orders.where(F.col("customer_key").isNotNull() & (F.col("ordered_at") < cutoff(as_of))
                        & not_cancelled())
    measures = done.groupBy("customer_key").agg(F.avg("net_amount").alias("value")) \
        .select("customer_key", F.lit("order_value").alias("measure"), "value")
    if lines is not None:
        units = done.select("customer_key", "order_id").join(
            lines.select("order_id", "quantity"), "order_id")
        measures = measures.unionByName(
            units.groupBy("customer_key").agg(F.avg("quantity").alias("value"))
            .select("customer_key", F.lit("units_per_line").alias("measure"), "value"))
    return measures.where(F.col("value").isNotNull() & (F.col("value") >= 0))


def robust_z(measures: DataFrame) -> DataFrame:
    """``measures`` with ``z`` (robust z-score of log1p(value) within its measure) and
    ``median`` (the measure's median value)."""
    x = F.log1p("value")
    centre = measures.groupBy("measure").agg(F.percentile_approx(x, 0.5, 10_000).alias("_m"))
    dev = measures.join(F.broadcast(centre), "measure").withColumn("_d", F.abs(x - F.col("_m")))
    spread = dev.groupBy("measure").agg(
        F.percentile_approx("_d", 0.5, 10_000).alias("_mad"), F.avg("_d").alias("_mean_ad"))
    scale: Column = F.when(F.col("_mad") > 0, 1.4826 * F.col("_mad")) \
        .otherwise(1.2533 * F.col("_mean_ad"))
    return dev.join(F.broadcast(spread), "measure").select(
        "customer_key", "measure", "value",
        F.when(scale > 0, (x - F.col("_m")) / scale).alias("z"),
        F.expm1("_m").alias("median"))


def outlier_flags(orders: DataFrame, lines: DataFrame | None, as_of: dt.date,
                  conf: FlagsConfig) -> DataFrame:
    """``COLUMNS`` of every buyer far out on an order measure."""
    scored = robust_z(order_measures(orders, lines, as_of))
    far = scored.where((F.col("z") >= conf.outlier_z)
                       & (F.col("value") >= conf.outlier_ratio * F.col("median")))
    text = F.format_string("%s %.1f (%.1fx the median %.1f, robust z %.1f)", F.col("measure"),
                           F.col("value"), F.col("value") / F.col("median"), F.col("median"),
                           F.col("z"))
    return far.groupBy("customer_key").agg(
        F.concat_ws("; ", F.sort_array(F.collect_list(text))).alias("reason"),
        F.max("z").alias("score")).select(
        "customer_key", F.lit("outlier").alias("flag"), "reason", "score")


def customer_flags(events: DataFrame, orders: DataFrame, lines: DataFrame | None,
                   as_of: dt.date, conf: FlagsConfig) -> DataFrame:
    """Every flagged customer as of ``as_of``: one row per customer and flag."""
    return bot_flags(events, as_of, conf).unionByName(outlier_flags(orders, lines, as_of, conf))
