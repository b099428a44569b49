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


def cluster_sizes(clusters: DataFrame) -> list[tuple[int, int]]:
    """(records per customer, number of customers) — a small aggregate."""
    sizes = clusters.groupBy("cluster_id").count().groupBy(F.col("count").alias("size")) \
        .agg(F.count("*").alias("customers")).orderBy("size")
    return [(r["size"], r["customers"]) for r in sizes.collect()]


def largest_clusters(clusters: DataFrame, records: DataFrame, n: int) -> list[dict[str, Any]]:
    """The ``n`` largest clusters with their records' keys and systems."""
    if n == 0:
        return []
    members = clusters.join(records.select(F.col("record_key").alias("unique_id"), "system"),
                            "unique_id")
    top = members.groupBy("cluster_id").agg(
        F.count("*").alias("size"), F.sort_array(F.collect_list("unique_id")).alias("records"),
        F.array_sort(F.collect_set("system")).alias("systems")) \
        .orderBy(F.desc("size"), "cluster_id").limit(n)
    return [{"customer_key" if k == "cluster_id" else k: v for k, v in r.asDict().items()}
            for r in top.collect()]


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
