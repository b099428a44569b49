"""How well clusters recover the demo's latent archetypes: each customer's true archetype is
the primary archetype of the person behind its CRM records (demo truth)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.segments.clustering import adjusted_rand_index


def customer_archetypes(spark: SparkSession, identity_map: DataFrame,
                        truth_root: str) -> DataFrame:
    """``customer_key``, ``archetype`` of every customer with a CRM record in the truth."""
    records = spark.read.parquet(f"{truth_root}/crm_records").select(
        F.concat_ws(":", "system", "crm_id").alias("id_value"), "person_id")
    persons = spark.read.parquet(f"{truth_root}/persons").select("person_id", "archetype")
    return identity_map.where(F.col("id_kind") == "record_key").join(records, "id_value") \
        .groupBy("customer_key").agg(F.min("person_id").alias("person_id")) \
        .join(persons, "person_id").select("customer_key", "archetype")


def archetype_ari(clusters: DataFrame, archetypes: DataFrame) -> float:
    """Adjusted Rand index of ``clusters`` (customer_key, cluster) against the archetypes."""
    return adjusted_rand_index(clusters.join(archetypes, "customer_key"), "cluster",
                               "archetype")
