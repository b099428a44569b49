"""How well clusters recover the demo's latent archetypes: each customer's true archetype is
the primary archetype of the person behind its CRM records (demo truth)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from seglake.segments.clustering import adjusted_rand_index
from seglake.truth import customer_persons


def customer_archetypes(spark: SparkSession, identity_map: DataFrame,
                        truth_root: str) -> DataFrame:
    """``customer_key``, ``archetype`` of every customer with a CRM record in the truth."""
    persons = spark.read.parquet(f"{truth_root}/persons").select("person_id", "archetype")
    return customer_persons(spark, identity_map, truth_root).join(persons, "person_id") \
        .select("customer_key", "archetype")


def archetype_ari(clusters: DataFrame, archetypes: DataFrame) -> float:
    """Adjusted Rand index of ``clusters`` (customer_key, cluster) against the archetypes."""
    return adjusted_rand_index(clusters.join(archetypes, "customer_key"), "cluster",
                               "archetype")
