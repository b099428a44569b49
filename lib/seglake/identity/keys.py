"""Stable customer keys: today's clusters inherit yesterday's keys.

Each previous key goes to the cluster holding most of its anchors (CRM records, emails, account
ids); a cluster that inherits several keeps the one with most anchors and the others are merged
into it; a cluster that inherits none gets a new key. New keys are keyed hashes of the cluster's
anchors: opaque without the secret, and the same input gives the same keys.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.privacy import keyed_hash

KEY_LENGTH = 24  # hex characters of the keyed hash kept in a key


def opaque_key(prefix: str, text: Column, key: bytes) -> Column:
    """``<prefix><24 hex>`` from a keyed hash of ``text``: not a source id, not reversible."""
    return F.concat(F.lit(prefix), F.substring(keyed_hash(text, key), 1, KEY_LENGTH))


def assign_keys(anchors: DataFrame, previous: DataFrame | None, key: bytes) -> DataFrame:
    """``anchors`` (id_kind, id_value, group) -> the same rows with ``customer_key``.

    ``previous`` holds the last run's (id_kind, id_value, customer_key)."""
    anchor = F.concat_ws(":", "id_kind", "id_value")
    fresh = anchors.groupBy("group").agg(
        opaque_key("c_", F.array_join(F.sort_array(F.collect_list(anchor)), "|"), key)
        .alias("_new_key"))
    if previous is None:
        inherited = anchors.sparkSession.createDataFrame([], "group STRING, _kept STRING")
    else:
        votes = anchors.join(previous.select("id_kind", "id_value", "customer_key"),
                             ["id_kind", "id_value"]) \
            .groupBy("group", "customer_key").agg(F.count("*").alias("votes"))
        by_key = Window.partitionBy("customer_key").orderBy(F.desc("votes"), "group")
        claims = votes.withColumn("_rank", F.row_number().over(by_key)).where("_rank = 1")
        by_group = Window.partitionBy("group").orderBy(F.desc("votes"), "customer_key")
        inherited = claims.withColumn("_rank", F.row_number().over(by_group)) \
            .where("_rank = 1").select("group", F.col("customer_key").alias("_kept"))
    return anchors.join(fresh, "group").join(inherited, "group", "left") \
        .withColumn("customer_key", F.coalesce("_kept", "_new_key")).drop("_kept", "_new_key")


def merges(previous: DataFrame | None, current: DataFrame) -> DataFrame:
    """(old_key, new_key, ids_moved): keys that no longer exist, and where their ids went."""
    schema = "old_key STRING, new_key STRING, ids_moved BIGINT"
    if previous is None:
        return current.sparkSession.createDataFrame([], schema)
    alive = current.select(F.col("customer_key").alias("old_key")).distinct()
    moved = previous.select("id_kind", "id_value", F.col("customer_key").alias("old_key")) \
        .join(current.select("id_kind", "id_value", F.col("customer_key").alias("new_key")),
              ["id_kind", "id_value"]) \
        .where(F.col("old_key") != F.col("new_key")) \
        .join(alive, "old_key", "left_anti")
    return moved.groupBy("old_key", "new_key").agg(F.count("*").alias("ids_moved"))
