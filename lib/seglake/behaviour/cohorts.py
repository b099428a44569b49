"""Cohort retention: customers grouped by the month of their first completed order, and how
many of each cohort buy again in each later month — the retention view marketing reads before
any segment, point in time like the features (orders strictly before ``as_of``)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def cohort_retention(orders: DataFrame, as_of: dt.date) -> DataFrame:
    """Per acquisition cohort (month of the first completed order) and months since it: the
    cohort's size, its customers with a completed order that month and their net revenue, as
    counts and shares of the cohort. ``orders``: keyed orders before ``as_of``."""
    done = orders.where((F.col("status") == "completed") & F.col("customer_key").isNotNull()) \
        .select("customer_key", F.trunc("ordered_at", "month").alias("month"),
                F.coalesce("net_amount", F.lit(0.0)).alias("net_amount"))
    first = done.groupBy("customer_key").agg(F.min("month").alias("cohort_month"))
    sizes = first.groupBy("cohort_month").agg(F.count(F.lit(1)).alias("cohort_customers"))
    monthly = done.join(first, "customer_key").groupBy("cohort_month", "month").agg(
        F.countDistinct("customer_key").alias("active_customers"),
        F.sum("net_amount").alias("revenue"))
    return monthly.join(sizes, "cohort_month").select(
        "cohort_month",
        F.months_between("month", "cohort_month").cast("int").alias("months_since"),
        "cohort_customers", "active_customers",
        (F.col("active_customers") / F.col("cohort_customers")).alias("active_share"),
        F.round("revenue", 2).alias("revenue"),
        F.round(F.col("revenue") / F.col("cohort_customers"), 4).alias("revenue_per_customer"),
        # the month of as_of is still running: its figures will grow
        (F.add_months("month", 1) <= F.lit(as_of)).alias("month_complete"))
