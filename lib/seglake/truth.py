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
