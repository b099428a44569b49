"""Funnel stage and cart abandonment."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.inputs import cutoff, within
from seglake.config import FeaturesConfig


def abandoned_carts(events: DataFrame, orders: DataFrame, products: DataFrame,
                    as_of: dt.date, config: FeaturesConfig) -> DataFrame:
    """One row per customer with an abandoned cart before ``as_of``.

    A cart is a session with an add to cart, timed at its last add and valued at catalogue
    prices. It is abandoned when no purchase event and no order of the customer follows within
    ``cart_abandon_hours``; a cart younger than that at ``as_of`` is still open and not counted,
    so the answer never depends on what happens after ``as_of``."""
    hours = config.cart_abandon_hours
    keyed = events.where(F.col("customer_key").isNotNull())
    adds = keyed.where(F.col("event_type") == "add_to_cart") \
        .join(F.broadcast(products.dropDuplicates(["product_id"])), "product_id", "left")
    carts = adds.groupBy("customer_key", "session_id").agg(
        F.max("event_ts").alias("cart_at"),
        F.round(F.coalesce(F.sum("price"), F.lit(0.0)), 2).alias("value")) \
        .where(F.col("cart_at") + F.make_interval(hours=F.lit(hours)) <= cutoff(as_of))
    purchases = keyed.where(F.col("event_type") == "purchase") \
        .select("customer_key", F.col("event_ts").alias("bought_at")) \
        .unionByName(orders.where(F.col("customer_key").isNotNull())
                     .select("customer_key", F.col("ordered_at").alias("bought_at")))
    c, p = carts.alias("c"), purchases.alias("p")
    followed = (F.col("c.customer_key") == F.col("p.customer_key")) \
        & (F.col("p.bought_at") > F.col("c.cart_at")) \
        & (F.col("p.bought_at") <= F.col("c.cart_at") + F.make_interval(hours=F.lit(hours)))
    abandoned = c.join(p, followed, "left_anti")
    windowed = []
    for w in sorted(config.windows):
        recent = within(as_of, "cart_at", w)
        windowed += [F.count(F.when(recent, True)).alias(f"abandoned_carts_{w}d"),
                     F.round(F.coalesce(F.sum(F.when(recent, F.col("value"))), F.lit(0.0)), 2)
                     .alias(f"abandoned_cart_value_{w}d")]
    return abandoned.groupBy("customer_key").agg(
        *windowed, F.max("cart_at").alias("last_abandoned_cart_at"))


def funnel_stage(orders_total: Column, engaged: Column, loyal_orders: int) -> Column:
    """Furthest stage: loyalty, conversion, engagement, else acquisition."""
    return F.when(orders_total >= loyal_orders, "loyalty") \
        .when(orders_total >= 1, "conversion") \
        .when(engaged, "engagement").otherwise("acquisition")
