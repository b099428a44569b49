"""The identity map derived by resolve's Spark code (stitching.identity_map) against the same
map as one DuckDB SQL script over the same Delta tables' Parquet files, in the driver
(local_sql.local_identity_map, what resolve runs when Splink ran on DuckDB): seconds of each and
whether their rows are the same. Both take the same inputs: the lakehouse's CRM records, the
clusters and previous keys of its last resolve (silver.identity_map), the emails and account
ids of orders, email events, consents and events, and every login.

A full resolve whose linkage ran on DuckDB derives its map there; the incremental path and the
Spark engine derive it with Spark.

Usage: python bench/identity_map_bench.py --lakehouse PATH   (a lakehouse resolved at least
once, delta-rs backend: e.g. bench/out/incremental/medium/lakehouse after incremental_bench)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.declarations import CONSENTS, IDENTITY_MAP
from seglake.identity.local_sql import local_identity_map
from seglake.identity.stage import _ids, crm_records
from seglake.identity.stitching import MAP_COLUMNS, RECORD, current, identity_map
from seglake.lakehouse import Lakehouse
from seglake.privacy import pseudonymization_key
from seglake.session import get_spark


def clusters_of(lakehouse: Lakehouse):
    """The last resolve's keys as clusters: record_key, group."""
    return current(lakehouse.read(IDENTITY_MAP)).where(F.col("id_kind") == RECORD).select(
        F.col("id_value").alias("record_key"), F.col("customer_key").alias("group"))


def spark_map(spark, lakehouse: Lakehouse, key: bytes, inherit: bool = True):
    """The map by resolve's code (stitching.identity_map) from the same inputs, materialised:
    the last resolve's keys as the clusters and, when ``inherit``, as the previous map."""
    previous = current(lakehouse.read(IDENTITY_MAP)).select("id_kind", "id_value",
                                                            "customer_key")
    records = crm_records(lakehouse)
    clusters = clusters_of(lakehouse)

    def optional(name):
        return lakehouse.read(name) if lakehouse.exists(name) else None

    orders, events = optional("silver.orders"), optional("silver.events")
    emails = _ids(spark, [(orders, "customer_email_hash"),
                          (optional("silver.email_events"), "email_hash"),
                          (optional(CONSENTS), "subject_hash")])
    accounts = _ids(spark, [(orders, "customer_id"), (events, "user_id")])
    if events is None:
        logins = spark.createDataFrame([], "client_id STRING, customer_id STRING, "
                                           "event_ts TIMESTAMP")
        clients = spark.createDataFrame([], "id_value STRING")
    else:
        client = F.coalesce("cookie_id", "device_id").alias("client_id")
        logins = events.where(F.col("user_id").isNotNull()).select(
            client, F.col("user_id").alias("customer_id"), "event_ts")
        clients = events.select(client.alias("id_value"))
    derived = identity_map(records, clusters, emails, accounts, logins, clients,
                           previous if inherit else None, key).persist()
    return derived, derived.count()


def different_rows(theirs: pa.Table, derived) -> int:
    """Rows in one map and not the other (DuckDB's ``theirs``, Spark's ``derived``)."""
    con = duckdb.connect()
    con.register("map", theirs)
    con.register("spark_map", derived.select(*MAP_COLUMNS).toArrow())
    columns = ", ".join(MAP_COLUMNS[:4]) + ", epoch_us(valid_from), epoch_us(valid_to)"
    return con.sql(f"select count(*) from ((select {columns} from map except all select "
                   f"{columns} from spark_map) union all (select {columns} from spark_map "
                   f"except all select {columns} from map))").fetchall()[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.lakehouse).absolute()
    config = SeglakeConfig.model_validate({
        "spark": {"master": "local[*]"}, "lakehouse": {"root": str(root)},
        "privacy": {"demo_mode": True}})
    if not (root / "silver" / "identity_map" / "_delta_log").exists():
        raise SystemExit(f"{root} holds no silver.identity_map: resolve it first")
    key = pseudonymization_key(config.privacy)
    spark = get_spark(config)
    lakehouse = Lakehouse.from_config(spark, config)
    spark_s, duck_s = [], []
    for run in range(args.runs):  # alternated: neither engine warms up at the other's cost
        started = time.monotonic()
        derived, rows = spark_map(spark, lakehouse, key)
        spark_s.append(time.monotonic() - started)
        started = time.monotonic()
        theirs = local_identity_map(lakehouse, clusters_of(lakehouse).toArrow(), key)
        duck_s.append(time.monotonic() - started)
        if run < args.runs - 1:
            derived.unpersist()
    differ = different_rows(theirs, derived)
    derived.unpersist()
    # every key new (no previous map): the keyed hashes of the anchors, compared too
    fresh, _ = spark_map(spark, lakehouse, key, inherit=False)
    differ_fresh = different_rows(local_identity_map(
        lakehouse, clusters_of(lakehouse).toArrow(), key, inherit=False), fresh)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}, DuckDB {duckdb.__version__}; {root}")
    print(f"identity map: {rows:,} rows by Spark, {theirs.num_rows:,} by DuckDB; rows that differ: "
          f"{differ:,} (every key new: {differ_fresh:,})")
    for engine, seconds in (("Spark (stitching.identity_map)", spark_s),
                            ("DuckDB SQL (Parquet files)", duck_s)):
        print(f"{engine:<32} " + " ".join(f"{s:7.1f} s" for s in seconds))
    print(f"Spark / DuckDB, last run: {spark_s[-1] / duck_s[-1]:.1f}x")


if __name__ == "__main__":
    main()
