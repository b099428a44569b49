"""What an analyst checks after a resolve run, written to ``<reports>/<run_id>/identity/``:
Splink's match-weight and m/u charts, the distribution of cluster sizes and the largest
clusters (a sign of over-merging). Record keys only: no PII leaves the restricted table."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.declarations import CUSTOMERS, IDENTITY_MAP
from seglake.lakehouse import Lakehouse, parquet_scan

log = logging.getLogger(__name__)


@dataclass
class Figures:
    """What a resolve reports of the golden records as written."""

    customers: int
    crm_customers: int
    sizes: list[tuple[int, int]]      # cluster_sizes
    largest: list[dict[str, Any]]     # largest_clusters


def golden_figures(lakehouse: Lakehouse, n: int, local: bool = True) -> Figures:
    """The counts, cluster sizes and ``n`` largest clusters of silver.customers as written
    (record keys from silver.identity_map), read in the driver from the tables' files when
    they have some, unless not ``local`` (four Spark jobs took 0.8 s at medium)."""
    files = {name: lakehouse.local_files(name) for name in (CUSTOMERS, IDENTITY_MAP)}
    if not local or not all(files.values()):
        customers = lakehouse.read(CUSTOMERS)
        keys = lakehouse.read(IDENTITY_MAP).where(F.col("id_kind") == "record_key") \
            .select(F.col("id_value").alias("record_key"), "customer_key")
        total, crm = customers.agg(F.count(F.lit(1)),
                                   F.count(F.when(F.col("profile") == "crm", True))).first()
        return Figures(total, crm, cluster_sizes(customers),
                       largest_clusters(customers, keys, n))
    import duckdb

    con = duckdb.connect()
    try:
        for view, name in (("customers", CUSTOMERS), ("keys", IDENTITY_MAP)):
            con.sql(f"create view {view} as select * from {parquet_scan(files[name])}")
        total, crm = con.sql("select count(*), count(*) filter (where profile = 'crm') "
                             "from customers").fetchall()[0]
        sizes = con.sql("select record_count, count(*) from customers where profile = 'crm' "
                        "group by all order by all").fetchall()
        largest = con.sql(
            "with top as (select customer_key, systems, row_number() over (order by "
            "record_count desc, customer_key) r from customers where profile = 'crm' "
            "order by r limit $n) select t.customer_key, count(*) size, "
            "list_sort(list(k.id_value)) records, any_value(t.systems) systems from top t "
            "join keys k on k.customer_key = t.customer_key and k.id_kind = 'record_key' "
            "group by t.customer_key, t.r order by t.r", params={"n": n})
        columns = largest.columns
        return Figures(total, crm, [tuple(s) for s in sizes],
                       [dict(zip(columns, r, strict=True)) for r in largest.fetchall()])
    finally:
        con.close()


def cluster_sizes(customers: DataFrame) -> list[tuple[int, int]]:
    """(records per customer, number of customers) of the golden records with a CRM profile
    (``customers``: silver.customers): an aggregate of their record counts."""
    sizes = customers.where(F.col("profile") == "crm").groupBy("record_count").count()
    return sorted((r["record_count"], r["count"]) for r in sizes.collect())


def largest_clusters(customers: DataFrame, record_keys: DataFrame,
                     n: int) -> list[dict[str, Any]]:
    """The ``n`` customers of most CRM records with their records' keys and systems
    (``record_keys``: record_key, customer_key; the systems are the golden record's)."""
    if n == 0:
        return []
    top = customers.where(F.col("profile") == "crm") \
        .orderBy(F.desc("record_count"), "customer_key").limit(n) \
        .select("customer_key", "systems").collect()
    members = record_keys.where(F.col("customer_key").isin(*[r["customer_key"] for r in top]))
    found = {r["customer_key"]: r for r in members.groupBy("customer_key").agg(
        F.count("*").alias("size"), F.sort_array(F.collect_list("record_key")).alias("records"))
        .collect()}
    return [{**found[r["customer_key"]].asDict(), "systems": r["systems"]}
            for r in top if r["customer_key"] in found]


def write(folder: Path, charts: dict[str, Any], sizes: list[tuple[int, int]],
          largest: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    """Charts as standalone HTML, the figures as JSON; returns the files written."""
    import altair as alt
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in charts.items():
        path = folder / f"{name}.html"
        chart.save(str(path))
        written.append(path)
    sizes_df = pd.DataFrame(sizes, columns=["records per customer", "customers"])
    chart = alt.Chart(sizes_df, title="Cluster sizes").mark_bar().encode(
        x="records per customer:O", y=alt.Y("customers:Q", scale=alt.Scale(type="symlog")))
    path = folder / "cluster_sizes.html"
    chart.save(str(path))
    written.append(path)
    path = folder / "identity.json"
    path.write_text(json.dumps({"summary": summary, "cluster_sizes": sizes,
                                "largest_clusters": largest}, indent=2, default=str) + "\n")
    written.append(path)
    return written
