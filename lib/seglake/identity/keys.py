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
from seglake.session import held

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
    keys = fresh.join(inherited, "group", "left").select(
        "group", F.coalesce("_kept", "_new_key").alias("customer_key"))
    return anchors.join(keys, "group")  # one join of the anchors: their groups are few


def key_changes(previous: DataFrame | None, current: DataFrame, links: DataFrame,
                whole: tuple[DataFrame, DataFrame] | None = None) -> DataFrame:
    """Every previous key whose identifiers moved, and why.

    ``event``: ``login`` (an anonymous cookie or device key ended by the first login: the
    identifier now resolves to the account's customer; ``previous`` says which keys were
    anonymous in its column ``anonymous``), ``merge`` (the old key is retired), ``split`` (ids
    went to a key that did not exist: no link at or above the threshold ties them to the rest
    any more) or ``move`` (to another existing key). A merge carries the strongest link
    (``links``: record_key_l, record_key_r, match_probability) that now ties a record of the
    old key to one of another previous key. ``whole``: the last and the new map's current rows
    whole, when ``previous`` and ``current`` hold only the rows that may differ (an incremental
    run's scope): whether an old key lives on, or a new one existed, is asked of them."""
    schema = ("event STRING, old_key STRING, new_key STRING, ids_moved BIGINT, "
              "record_key_l STRING, record_key_r STRING, match_probability DOUBLE")
    if previous is None:
        return current.sparkSession.createDataFrame([], schema)
    anonymous = F.coalesce("anonymous", F.lit(False)) if "anonymous" in previous.columns \
        else F.lit(False)
    moved = previous.select("id_kind", "id_value", F.col("customer_key").alias("old_key"),
                            anonymous.alias("_anonymous")) \
        .join(current.select("id_kind", "id_value", F.col("customer_key").alias("new_key")),
              ["id_kind", "id_value"]) \
        .where(F.col("old_key") != F.col("new_key")) \
        .groupBy("old_key", "new_key").agg(F.count("*").alias("ids_moved"),
                                           F.max("_anonymous").alias("_anonymous"))
    keys_before, keys_after = whole or (previous, current)
    if whole is not None:  # few: the whole maps are searched for their keys only
        kept = held(moved)
        moved, shipped = kept.frame, kept.shipped()
        keys_before = keys_before.join(shipped.select(F.col("new_key").alias("customer_key")),
                                       "customer_key", "left_semi")
        keys_after = keys_after.join(shipped.select(F.col("old_key").alias("customer_key")),
                                     "customer_key", "left_semi")
    alive = keys_after.select(F.col("customer_key").alias("old_key")).distinct() \
        .withColumn("_alive", F.lit(True))
    existed = keys_before.select(F.col("customer_key").alias("new_key")).distinct() \
        .withColumn("_existed", F.lit(True))
    moved = moved.join(alive, "old_key", "left").join(existed, "new_key", "left") \
        .withColumn("event", F.when(F.col("_anonymous"), "login")
                    .when(F.col("_alive").isNull(), "merge")
                    .when(F.col("_existed").isNull(), "split").otherwise("move"))
    # a bridge's other end may lie outside the rows that differ: its key from the whole map
    before = (previous if whole is None else whole[0]).where(F.col("id_kind") == "record_key") \
        .select(F.col("id_value").alias("record"), F.col("customer_key").alias("key"))
    bridges = links.join(before.toDF("record_key_l", "key_l"), "record_key_l") \
        .join(before.toDF("record_key_r", "key_r"), "record_key_r") \
        .where(F.col("key_l") != F.col("key_r"))
    ends = bridges.select(F.col("key_l").alias("old_key"), "record_key_l", "record_key_r",
                          "match_probability") \
        .unionByName(bridges.select(F.col("key_r").alias("old_key"), "record_key_l",
                                    "record_key_r", "match_probability"))
    why = ends.groupBy("old_key").agg(F.max_by(
        F.struct("record_key_l", "record_key_r", "match_probability"),
        F.struct("match_probability", "record_key_l", "record_key_r")).alias("_why")) \
        .withColumn("event", F.lit("merge"))
    return moved.join(why, ["old_key", "event"], "left").select(
        "event", "old_key", "new_key", "ids_moved", F.col("_why.record_key_l").alias(
            "record_key_l"), F.col("_why.record_key_r").alias("record_key_r"),
        F.col("_why.match_probability").alias("match_probability"))
