"""What an analyst checks after a resolve run, written to ``<reports>/<run_id>/identity/``:
Splink's match-weight and m/u charts, the distribution of cluster sizes and the largest
clusters (a sign of over-merging). Record keys only: no PII leaves the restricted table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


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
