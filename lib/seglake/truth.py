"""Reading the demo truth back against pipeline output: which person a customer is."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def customer_persons(spark: SparkSession, identity_map: DataFrame, truth_root: str) -> DataFrame:
    """``customer_key``, ``person_id`` of every customer with a CRM record in the truth (the
    identity map's record keys are ``<system>:<crm_id>``)."""
    records = spark.read.parquet(f"{truth_root}/crm_records").select(
        F.concat_ws(":", "system", "crm_id").alias("id_value"), "person_id")
    return identity_map.where(F.col("id_kind") == "record_key").join(records, "id_value") \
        .groupBy("customer_key").agg(F.min("person_id").alias("person_id"))


def flagged_customers(spark: SparkSession, silver_events: DataFrame, keyed_events: DataFrame,
                      identity_map: DataFrame, truth_root: str) -> DataFrame:
    """``customer_key``, ``flag`` of each customer the demo made a bot (a visitor holding an
    injected bot's session in ``keyed_events``: customer_key, session_id) or an outlier (a
    reseller's CRM record)."""
    truth = spark.read.parquet(f"{truth_root}/flagged")
    bot_events = spark.read.parquet(f"{truth_root}/landing_rows").where(F.col("person_id") < 0) \
        .select(F.col("record_id").alias("event_id"))
    sessions = silver_events.join(bot_events, "event_id").select("session_id").distinct()
    bots = keyed_events.join(sessions, "session_id").select("customer_key", F.lit("bot")
                                                            .alias("flag"))
    outliers = customer_persons(spark, identity_map, truth_root).join(
        truth.where(F.col("flag") == "outlier"), "person_id").select("customer_key", "flag")
    return bots.unionByName(outliers).distinct()
