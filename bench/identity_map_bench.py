"""The identity map derived by resolve's Spark code against the same map written as one
DuckDB SQL script over the same Delta tables' Parquet files, in the driver: seconds of each and
whether their rows are the same. Both take the same inputs: the lakehouse's CRM records, the
clusters and previous keys of its last resolve (silver.identity_map), the emails and account
ids of orders, email events, consents and events, and every login.

It measures what moving resolve's post-linkage steps to DuckDB would buy where Splink already
runs there (identity.engine duckdb); issue 22's cost targets are open on the Spark side.

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
from deltalake import DeltaTable
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.declarations import CONSENTS, IDENTITY_MAP
from seglake.identity.stage import _ids, crm_records
from seglake.identity.stitching import MAP_COLUMNS, RECORD, current, identity_map
from seglake.lakehouse import Lakehouse
from seglake.privacy import keyed_digest, pseudonymization_key
from seglake.session import get_spark

# what each input table gives the map, with a typed empty stand-in when the table is absent
INPUTS = {"customers_raw": "record_key VARCHAR, created_at TIMESTAMP, email_hash VARCHAR, "
                           "source_id VARCHAR, phone_hash VARCHAR",
          "orders": "customer_email_hash VARCHAR, customer_id VARCHAR",
          "email_events": "email_hash VARCHAR", "consents": "subject_hash VARCHAR",
          "events": "user_id VARCHAR, cookie_id VARCHAR, device_id VARCHAR, event_ts TIMESTAMP",
          "identity_map": "id_kind VARCHAR, id_value VARCHAR, customer_key VARCHAR, "
                          "valid_to TIMESTAMP"}

# stitching.identity_map and keys.assign_keys, statement by statement (DuckDB dialect)
MAP_SQL = """
create temp table recs as select r.record_key, r.created_at, r.email_hash,
  cast(r.source_id as varchar) source_id, r.phone_hash, m.customer_key "group"
  from customers_raw r join identity_map m on m.id_kind = 'record_key'
  and m.id_value = r.record_key and m.valid_to is null;
create temp table carried as
  select "group", created_at, record_key, 'email_hash' id_kind, email_hash id_value from recs
  where email_hash is not null
  union all select "group", created_at, record_key, 'customer_id', source_id from recs
  where source_id is not null
  union all select "group", created_at, record_key, 'phone_hash', phone_hash from recs
  where phone_hash is not null;
create temp table owned as select id_kind, id_value,
  arg_min("group", (created_at is null, -epoch_us(created_at), record_key)) "group"
  from carried group by all;
create temp table seen as
  select distinct 'email_hash' id_kind, v id_value from (select customer_email_hash v from orders
    union all select email_hash from email_events union all select subject_hash from consents)
  where v is not null
  union select distinct 'customer_id', v from (select customer_id v from orders
    union all select user_id from events) where v is not null;
create temp table anchors as
  select 'record_key' id_kind, record_key id_value, "group" from recs
  union all select id_kind, id_value, "group" from owned where id_kind <> 'phone_hash'
  union all select s.id_kind, s.id_value, s.id_kind || ':' || s.id_value from seen s
  anti join owned o using (id_kind, id_value);
create temp table previous as select id_kind, id_value, customer_key from identity_map
  where valid_to is null and {inherit};
create temp table fresh as select "group", 'c_' || substr(keyed_hash(array_to_string(
  list_sort(list(id_kind || ':' || id_value)), '|')), 1, 24) new_key from anchors group by all;
create temp table votes as select a."group", p.customer_key, count(*) votes from anchors a
  join previous p using (id_kind, id_value) group by all;
create temp table inherited as select "group", customer_key kept from (
  select *, row_number() over (partition by "group" order by votes desc, customer_key) g from (
    select *, row_number() over (partition by customer_key order by votes desc, "group") k
    from votes) where k = 1) where g = 1;
create temp table keyed as select a.id_kind, a.id_value,
  coalesce(i.kept, f.new_key) customer_key, a."group" from anchors a join fresh f using ("group")
  left join inherited i using ("group");
create temp table known as select id_kind, id_value, customer_key from keyed
  union all select o.id_kind, o.id_value, g.customer_key from owned o join (
    select distinct "group", customer_key from keyed where id_kind = 'record_key') g
  using ("group") where o.id_kind = 'phone_hash';
create temp table followed as with l as (
    select coalesce(e.cookie_id, e.device_id) client_id, k.customer_key, e.event_ts
    from events e join known k on k.id_kind = 'customer_id' and k.id_value = e.user_id
    where coalesce(e.cookie_id, e.device_id) is not null),
  last_at as (select * from (select *, lead(event_ts) over w nt from l window w as (
    partition by client_id order by event_ts, customer_key)) where nt is null or nt <> event_ts),
  starts as (select * from (select *, lag(customer_key) over w b from last_at window w as (
    partition by client_id order by event_ts, customer_key)) where b is null or b <> customer_key)
  select 'client_id' id_kind, client_id id_value, customer_key, event_ts valid_from,
  lead(event_ts) over (partition by client_id order by event_ts, customer_key) valid_to
  from starts;
create temp table anonymous as select 'client_id' id_kind, c.id_value,
  'a_' || substr(keyed_hash('client:' || c.id_value), 1, 24) customer_key, f.valid_to from (
    select distinct coalesce(cookie_id, device_id) id_value from events
    where coalesce(cookie_id, device_id) is not null) c
  left join (select id_value, min(valid_from) valid_to from followed group by all) f
  using (id_value);
create temp table map as
  select id_kind, id_value, customer_key, false anonymous, null::timestamp valid_from,
  null::timestamp valid_to from known
  union all select id_kind, id_value, customer_key, false, valid_from, valid_to from followed
  union all select id_kind, id_value, customer_key, true, null, valid_to from anonymous
"""


def duckdb_map(root: Path, key: bytes, inherit: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection holding table ``map``: the identity map by MAP_SQL, read from the Delta
    tables' current files (every key new unless ``inherit``)."""
    con = duckdb.connect()
    con.sql("set timezone = 'UTC'")
    for name, columns in INPUTS.items():
        folder = root / "silver" / name
        if (folder / "_delta_log").exists():
            files = DeltaTable(str(folder)).file_uris()
            names = ", ".join(c.split()[0] for c in columns.split(", "))
            con.sql(f"create view {name} as select {names} from read_parquet({files!r})")
        else:
            con.sql(f"create table {name} ({columns})")

    def keyed(values: pa.Array) -> pa.Array:
        return pa.array([None if v is None else keyed_digest(v, key)
                         for v in values.to_pylist()], pa.string())

    con.create_function("keyed_hash", keyed, ["VARCHAR"], "VARCHAR", type="arrow")
    for statement in MAP_SQL.format(inherit=str(inherit).lower()).split(";"):
        con.sql(statement)
    return con


def spark_map(spark, lakehouse: Lakehouse, key: bytes, inherit: bool = True):
    """The map by resolve's code (stitching.identity_map) from the same inputs, materialised:
    the last resolve's keys as the clusters and, when ``inherit``, as the previous map."""
    previous = current(lakehouse.read(IDENTITY_MAP)).select("id_kind", "id_value",
                                                            "customer_key")
    records = crm_records(lakehouse)
    clusters = previous.where(F.col("id_kind") == RECORD).select(
        F.col("id_value").alias("record_key"), F.col("customer_key").alias("group"))

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


def different_rows(con: duckdb.DuckDBPyConnection, derived) -> int:
    """Rows in one map and not the other (``con``'s table ``map``, Spark's ``derived``)."""
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
        con = duckdb_map(root, key)
        duck_rows = con.sql("select count(*) from map").fetchall()[0][0]
        duck_s.append(time.monotonic() - started)
        if run < args.runs - 1:
            derived.unpersist()
    differ = different_rows(con, derived)
    derived.unpersist()
    # every key new (no previous map): the keyed hashes of the anchors, compared too
    fresh, _ = spark_map(spark, lakehouse, key, inherit=False)
    differ_fresh = different_rows(duckdb_map(root, key, inherit=False), fresh)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}, DuckDB {duckdb.__version__}; {root}")
    print(f"identity map: {rows:,} rows by Spark, {duck_rows:,} by DuckDB; rows that differ: "
          f"{differ:,} (every key new: {differ_fresh:,})")
    for engine, seconds in (("Spark (stitching.identity_map)", spark_s),
                            ("DuckDB SQL (Parquet files)", duck_s)):
        print(f"{engine:<32} " + " ".join(f"{s:7.1f} s" for s in seconds))
    print(f"Spark / DuckDB, last run: {spark_s[-1] / duck_s[-1]:.1f}x")


if __name__ == "__main__":
    main()
