"""``seglake report``: one self-contained HTML file per run (figures embedded as PNG) that an
analyst opens in a browser — from the lakehouse's tables and ``ops.models``, nothing else.

Each section is a function of the lakehouse returning a :class:`Section`; ``render`` only lays
them out, so a section is added in one place (``SECTIONS``).
"""

from __future__ import annotations

import base64
import datetime as dt
import glob
import html
import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to PNG bytes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from seglake.config import SeglakeConfig  # noqa: E402
from seglake.declarations import (  # noqa: E402
    ALERTS,
    ASSIGNMENTS,
    CHANGES,
    CLUSTERS,
    COHORTS,
    CUSTOMERS,
    FLAGS,
    LIFT,
    PROFILES,
    QUALITY_RESULTS,
    RECOMMENDATIONS,
    RUN_LOG,
    SCORES,
    SUMMARY,
)
from seglake.lakehouse import Lakehouse  # noqa: E402
from seglake.models import latest_model  # noqa: E402
from seglake.runlog import RunLog  # noqa: E402
from seglake.tables import registry  # noqa: E402
from seglake.volumes import daily_counts  # noqa: E402

log = logging.getLogger(__name__)

PCA_POINTS = 5000  # customers drawn in the scatter (a sample beyond that)


class ReportError(RuntimeError):
    """Nothing to report on (no lakehouse, or not one stage run)."""


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, base64 PNG)
    missing: str = ""  # why the section is empty (its stage has not run)


@dataclass(frozen=True)
class ReportResult:
    run_id: str
    path: str
    sections: list[str]
    figures: int
    seconds: float


def png(fig) -> str:
    """A matplotlib figure as base64 PNG, closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _model_metrics(lakehouse: Lakehouse, kind: str) -> dict | None:
    row = latest_model(lakehouse, kind) if lakehouse.exists("ops.models") else None
    return None if row is None else {**json.loads(row["metrics"]), "version": row["version"]}


def latest_rows(lakehouse: Lakehouse, table: str, column: str) -> tuple[DataFrame, Any]:
    """The rows of ``table`` at the greatest value of ``column`` (the latest run, as_of or model
    version), and that value."""
    rows = lakehouse.read(table)
    value = rows.agg(F.max(column)).first()[0]
    return rows.where(F.col(column) == value), value


def overview(lakehouse: Lakehouse) -> Section:
    section = Section("overview", "Pipeline overview",
                      "Rows and version of every table by layer; rows quarantined by rule.")
    rows = [(name.split(".")[0], name, lakehouse.version(name), lakehouse.read(name).count())
            for name in lakehouse.tables()]
    tables = pd.DataFrame(rows, columns=["layer", "table", "version", "rows"])
    section.tables.append(("Tables", tables))
    layers = tables.groupby("layer", sort=False)["rows"].sum()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.barh(layers.index, layers.values, color="#4878a8")
    ax.set_xlabel("rows")
    ax.set_title("Rows per layer")
    section.figures.append(("Rows per layer", png(fig)))
    if lakehouse.exists("silver.quarantine"):
        by_rule = lakehouse.read("silver.quarantine") \
            .select(F.col("_source").alias("source"), F.explode("rules").alias("rule")) \
            .groupBy("source", "rule").count().orderBy(F.desc("count")).toPandas()
        section.tables.append(("Quarantined rows by source and rule", by_rule))
    return section


def _hint(lakehouse: Lakehouse, table: str) -> str:
    """What to run so that ``table`` exists, from its owner in the table registry."""
    return (lakehouse.registry or registry()).hint(table)


def quality(lakehouse: Lakehouse) -> Section:
    section = Section("quality", "Data quality",
                      "Expectations of the latest refine run per table: checked, passed, failed "
                      "(a failed blocking expectation stops the table from publishing).")
    if not lakehouse.exists("ops.quality_results"):
        section.missing = f"no quality results yet: {_hint(lakehouse, QUALITY_RESULTS)}"
        return section
    results, latest = latest_rows(lakehouse, "ops.quality_results", "run_id")
    summary = results.groupBy("table").agg(
        F.count("*").alias("expectations"),
        F.sum(F.col("success").cast("int")).alias("passed"),
        F.sum((~F.col("success")).cast("int")).alias("failed"),
        F.sum("unexpected_count").alias("unexpected_values")).orderBy("table").toPandas()
    section.intro += f" Run {latest}."
    section.tables.append(("Expectations by table", summary))
    failed = results.where(~F.col("success")).select(
        "table", "expectation", "column", "blocking", "unexpected_count").toPandas()
    section.tables.append(("Failed expectations", failed))
    return section


def identity(lakehouse: Lakehouse) -> Section:
    section = Section("identity", "Identity resolution",
                      "CRM records matched into customers (Splink); records per customer.")
    metrics = _model_metrics(lakehouse, "identity-linkage")
    if metrics is None or not lakehouse.exists("silver.customers"):
        section.missing = f"no identity model yet: {_hint(lakehouse, CUSTOMERS)}"
        return section
    pairs = [("CRM records", metrics["records"]),
             ("candidate pairs", metrics["candidate_pairs"]),
             ("matched pairs", metrics["matched_pairs"]),
             ("CRM customers", metrics["crm_customers"]),
             ("duplicate records merged", metrics["records"] - metrics["crm_customers"]),
             ("all customers", metrics["customers"]), ("key changes", metrics["merges"]),
             ("match threshold", metrics["threshold"])]
    rows = [(name, f"{value:,}") for name, value in pairs]
    if "drift" in metrics:
        drift = metrics["drift"]
        rows.append(("retraining advised",
                     f"{'yes' if drift['retrain_advised'] else 'no'} "
                     f"({drift['new_records_share']:.0%} of the records newer than the model, "
                     f"match weight PSI {drift['weight_psi']:.2f})"))
    figures = pd.DataFrame(rows, columns=["figure", "value"])
    section.tables.append((f"Linkage model v{metrics['version']}", figures))
    if metrics.get("blocking"):
        rules = pd.DataFrame(metrics["blocking"]).rename(columns={
            "rule": "blocking rule", "pairs": "pairs added", "kept": "kept",
            "recall_proxy": "identifier pairs reached"})
        section.tables.append((
            f"Blocking rules within the budget of {metrics['pair_budget']:,} pairs (pairs "
            "added: over the rules above; identifier pairs reached: share of records agreeing "
            "on an email, phone or identifier that the kept rules without identifiers pair, "
            "cumulative)", rules))
    sizes = lakehouse.read("silver.customers").groupBy("record_count").count() \
        .orderBy("record_count").toPandas()
    section.tables.append(("Customers by number of CRM records", sizes))
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(sizes["record_count"].astype(str), sizes["count"], color="#4878a8")
    ax.set_xlabel("CRM records in the customer")
    ax.set_ylabel("customers")
    ax.set_yscale("log")
    ax.set_title("Cluster sizes")
    section.figures.append(("Customers by number of CRM records", png(fig)))
    return section


def segments(lakehouse: Lakehouse) -> Section:
    section = Section("segments", "Segments",
                      "Size, revenue share (365 days), consenting customers and movement of "
                      "every published segment at the latest as_of.")
    if not lakehouse.exists("gold.segment_summary"):
        section.missing = f"no published segments yet: {_hint(lakehouse, SUMMARY)}"
        return section
    summary, as_of = latest_rows(lakehouse, "gold.segment_summary", "as_of")
    frame = summary.orderBy("kind", F.desc("customers")) \
        .select("kind", "segment", "customers", "share", "revenue_share", "consenting",
                "avg_propensity_score", "entered", "left").toPandas()
    section.intro += f" As of {as_of}."
    section.tables.append(("Segment summary", frame))
    for kind in ("rule", "cluster"):
        part = frame[frame["kind"] == kind]
        if part.empty:
            continue
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(part) + 1.2))
        y = np.arange(len(part))
        ax.barh(y - 0.2, part["share"], 0.4, label="customers", color="#4878a8")
        ax.barh(y + 0.2, part["revenue_share"], 0.4, label="revenue", color="#e49444")
        ax.set_yticks(y, part["segment"])
        ax.invert_yaxis()
        ax.set_xlabel("share")
        ax.legend()
        ax.set_title(f"{kind} segments: share of customers and of revenue")
        section.figures.append((f"{kind} segments: size and revenue share", png(fig)))
    return section


def profiles(lakehouse: Lakehouse) -> Section:
    section = Section("profiles", "Cluster profiles",
                      "Mean z-score of every clustering input per cluster (red above the "
                      "average customer, blue below); names are read off these profiles.")
    if not lakehouse.exists("gold.cluster_profiles"):
        section.missing = (f"no clusters yet: {_hint(lakehouse, PROFILES)} with clustering "
                           "enabled")
        return section
    table, version = latest_rows(lakehouse, "gold.cluster_profiles", "model_version")
    rows = table.orderBy("cluster").collect()
    features = sorted({name for r in rows for name in r["z"]})
    z = np.array([[r["z"].get(name, np.nan) for name in features] for r in rows])
    labels = [f"{r['cluster']} {r['cluster_name']} ({r['customers']:,})" for r in rows]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(features), 1.2 + 0.45 * len(rows)))
    bound = max(1.0, float(np.nanmax(np.abs(z))))
    image = ax.imshow(z, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(features)), features, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), labels)
    for (i, j), value in np.ndenumerate(z):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean z-score")
    ax.set_title(f"Clustering model v{version}")
    section.figures.append(("Mean z-score per cluster and input", png(fig)))
    section.tables.append(("Clusters", pd.DataFrame(
        [(r["cluster"], r["cluster_name"], r["customers"], r["share"], r["revenue_share"])
         for r in rows], columns=["cluster", "name", "customers", "share", "revenue_share"])))
    return section


def k_selection(lakehouse: Lakehouse) -> Section:
    section = Section("k-selection", "Choice of k",
                      "Silhouette (kept: the highest) and within-cluster sum of squares (elbow) "
                      "for every k tried; stability against the previous run and bootstrap "
                      "refits (adjusted Rand index).")
    metrics = _model_metrics(lakehouse, "clustering")
    if metrics is None:
        section.missing = f"no clustering model yet: {_hint(lakehouse, CLUSTERS)}"
        return section
    scores = pd.DataFrame(metrics["k_scores"])
    scores = scores[[c for c in ("k", "silhouette", "wssse", "seed") if c in scores]]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(scores["k"], scores["silhouette"], "o-", color="#4878a8", label="silhouette")
    ax.axvline(metrics["k"], color="grey", linestyle=":")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette", color="#4878a8")
    right = ax.twinx()
    right.plot(scores["k"], scores["wssse"], "s--", color="#e49444", label="WSSSE")
    right.set_ylabel("WSSSE", color="#e49444")
    ax.set_title(f"k = {metrics['k']} kept (model v{metrics['version']})")
    section.figures.append(("Silhouette and WSSSE by k", png(fig)))
    section.tables.append(("Scores by k", scores))
    stability = [("adjusted Rand index vs the previous run", metrics.get("stability_ari"))] + [
        (f"bootstrap refit {i}", ari) for i, ari in enumerate(metrics.get("bootstrap_ari", []), 1)]
    section.tables.append(("Stability", pd.DataFrame(stability, columns=["figure", "value"])))
    return section


def pca(lakehouse: Lakehouse) -> Section:
    section = Section("pca", "Customers in two dimensions",
                      "The first two principal components of the scaled clustering inputs, "
                      "coloured by cluster.")
    if not lakehouse.exists("gold.customer_clusters"):
        section.missing = f"no clusters yet: {_hint(lakehouse, CLUSTERS)}"
        return section
    points, version = latest_rows(lakehouse, "gold.customer_clusters", "model_version")
    n = points.count()
    if n > PCA_POINTS:
        points = points.sample(fraction=PCA_POINTS / n, seed=7)
        section.intro += f" A sample of {PCA_POINTS:,} of {n:,} customers."
    frame = points.select("cluster", "cluster_name", "pca_x", "pca_y").toPandas()
    fig, ax = plt.subplots(figsize=(7, 5))
    for (cluster, name), group in frame.groupby(["cluster", "cluster_name"]):
        ax.scatter(group["pca_x"], group["pca_y"], s=6, alpha=0.6, label=f"{cluster} {name}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(f"Clustering model v{version}")
    section.figures.append(("PCA scatter coloured by cluster", png(fig)))
    return section


def propensity(lakehouse: Lakehouse) -> Section:
    section = Section("propensity", "Propensity and churn models",
                      "Holdout ROC curve and lift by score decile (decile 1: the highest "
                      "scores); features at as_of - horizon, labels from the horizon after.")
    found = {kind: _model_metrics(lakehouse, kind) for kind in ("propensity", "churn")}
    found = {kind: m for kind, m in found.items() if m is not None}
    if not found:
        section.missing = f"no scoring models yet: {_hint(lakehouse, SCORES)}"
        return section
    section.tables.append(("Holdout metrics", pd.DataFrame(
        [(kind, m["version"], m.get("family", "random_forest"), m["trained_as_of"],
          m["roc_auc"], m["pr_auc"], m["precision"], m["recall"], m["f1"],
          m["deciles"][0]["lift"]) for kind, m in found.items()],
        columns=["model", "version", "family", "features as of", "ROC-AUC", "PR-AUC",
                 "precision", "recall", "F1", "top-decile lift"])))
    contest = [(kind, c["family"], "champion" if c["champion"] else "challenger", c["roc_auc"],
                c["pr_auc"], c["f1"], c["top_decile_lift"])
               for kind, m in found.items() for c in m.get("candidates", [])]
    if contest:
        section.tables.append(("Champion and challengers (same rows, same holdout)",
                               pd.DataFrame(contest, columns=[
                                   "model", "family", "role", "ROC-AUC", "PR-AUC", "F1",
                                   "top-decile lift"])))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for kind, m in found.items():
        curve = np.array(m["roc_curve"])
        ax.plot(curve[:, 0], curve[:, 1], label=f"{kind} (AUC {m['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend()
    ax.set_title("ROC (holdout)")
    section.figures.append(("ROC curve", png(fig)))
    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / len(found)
    for i, (kind, m) in enumerate(found.items()):
        deciles = pd.DataFrame(m["deciles"])
        ax.bar(deciles["decile"] + (i - (len(found) - 1) / 2) * width, deciles["lift"], width,
               label=kind)
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set_xlabel("score decile")
    ax.set_ylabel("lift")
    ax.set_xticks(range(1, 11))
    ax.legend()
    ax.set_title("Lift by decile (holdout)")
    section.figures.append(("Decile lift", png(fig)))
    return section


def cohorts(lakehouse: Lakehouse) -> Section:
    section = Section("cohorts", "Cohort retention",
                      "Customers by the month of their first completed order (rows) and the "
                      "share of them buying again each month after (columns), point in time; "
                      "the month of as_of is still running.")
    if not lakehouse.exists(COHORTS):
        section.missing = f"no cohorts yet: {_hint(lakehouse, COHORTS)}"
        return section
    table, as_of = latest_rows(lakehouse, COHORTS, "as_of")
    frame = table.select("cohort_month", "months_since", "cohort_customers", "active_share",
                         "revenue_per_customer").toPandas()
    if frame.empty:
        section.missing = f"no completed order before {as_of}"
        return section
    share = frame.pivot(index="cohort_month", columns="months_since", values="active_share") \
        .sort_index()
    sizes = frame.drop_duplicates("cohort_month").set_index("cohort_month")["cohort_customers"]
    section.intro += f" As of {as_of}."
    fig, ax = plt.subplots(figsize=(0.5 * share.shape[1] + 3, 0.35 * share.shape[0] + 1.5))
    image = ax.imshow(share.to_numpy(dtype=float), cmap="Blues", vmin=0.0, aspect="auto")
    ax.set_xticks(range(share.shape[1]), [str(c) for c in share.columns])
    ax.set_yticks(range(share.shape[0]), [f"{m:%Y-%m} ({sizes[m]:,})" for m in share.index])
    ax.set_xlabel("months since the first order")
    ax.set_ylabel("cohort (customers)")
    fig.colorbar(image, ax=ax, label="share buying that month")
    section.figures.append(("Cohort retention heatmap", png(fig)))
    revenue = frame.pivot(index="cohort_month", columns="months_since",
                          values="revenue_per_customer").sort_index()
    revenue.index = [f"{m:%Y-%m}" for m in revenue.index]
    section.tables.append(("Revenue per cohort customer by month since the first order",
                           revenue.reset_index(names="cohort")))
    return section


def flags(lakehouse: Lakehouse) -> Section:
    section = Section("flags", "Bots and outliers",
                      "Visitors flagged as bots and customers far out on an order measure "
                      "(gold.customer_flags): left out of fitting clusters and scores, flagged "
                      "in exports.")
    if not lakehouse.exists(FLAGS):
        section.missing = f"no flags yet: {_hint(lakehouse, FLAGS)}"
        return section
    table, as_of = latest_rows(lakehouse, FLAGS, "as_of")
    section.intro += f" As of {as_of}."
    # what fired: the signal names of bots, the measures of outliers
    fired = table.select("flag", F.explode(F.split("reason", "; ")).alias("part")).select(
        "flag", F.split("part", "[: ]")[0].alias("signal"))
    counts = fired.groupBy("flag", "signal").count().orderBy("flag", F.desc("count")).toPandas()
    totals = table.groupBy("flag").agg(F.count(F.lit(1)).alias("flagged"),
                                       F.round(F.avg("score"), 2).alias("mean score")) \
        .orderBy("flag").toPandas()
    if totals.empty:
        section.missing = f"nobody flagged as of {as_of}"
        return section
    section.tables.append(("Flagged", totals))
    section.tables.append(("Signals and measures that fired", counts))
    section.tables.append(("Strongest cases", table.orderBy(F.desc("score"), "customer_key")
                           .select("flag", "customer_key", "score", "reason").limit(10)
                           .toPandas()))
    return section


def recommendations(lakehouse: Lakehouse) -> Section:
    section = Section("recommendations", "Next best categories and send times",
                      "Per customer: its own strongest categories first, then an implicit ALS "
                      "model's (gold.customer_recommendations); measured by the same fit made "
                      "scoring.horizon_days earlier against each customer's first order since.")
    if not lakehouse.exists(RECOMMENDATIONS):
        section.missing = f"no recommendations yet: {_hint(lakehouse, RECOMMENDATIONS)}"
        return section
    metrics = _model_metrics(lakehouse, "recommendation")
    if metrics and "hit_rate" in metrics:
        section.intro += (f" Made as of {metrics['trained_as_of']}, judged on the "
                          f"{metrics['judged']:,} customers who ordered by {metrics['as_of']}.")
        section.tables.append((f"Hit rate at {metrics['top_k']}", pd.DataFrame(
            [("own categories, then the model", metrics["hit_rate"]),
             ("own categories, then the most popular", metrics["hit_rate_history"]),
             ("the most popular", metrics["hit_rate_popular"])],
            columns=["recommended", "hit rate"]).round(3)))
    table, as_of = latest_rows(lakehouse, RECOMMENDATIONS, "as_of")
    section.tables.append((f"First category recommended, as of {as_of}", table.groupBy(
        F.try_element_at("categories", F.lit(1)).alias("category")).count()
        .orderBy(F.desc("count")).toPandas()))
    hours = table.groupBy("send_hour", "send_basis").count().toPandas()
    if not hours.empty:
        by_hour = hours.pivot(index="send_hour", columns="send_basis", values="count") \
            .reindex(range(24)).fillna(0)
        fig, ax = plt.subplots(figsize=(7, 2.8))
        bottom = np.zeros(24)
        for basis in by_hour.columns:
            ax.bar(range(24), by_hour[basis], bottom=bottom, label=basis)
            bottom += by_hour[basis].to_numpy()
        ax.set_xlabel("send hour (local)")
        ax.set_ylabel("customers")
        ax.set_xticks(range(0, 24, 2))
        ax.legend(title="from")
        section.figures.append(("Send hours", png(fig)))
    return section


def changes(lakehouse: Lakehouse) -> Section:
    section = Section("changes", "Segment changes",
                      "Customers who entered or left each segment since the previous publish.")
    if not lakehouse.exists("gold.segment_changes"):
        section.missing = f"no published segments yet: {_hint(lakehouse, CHANGES)}"
        return section
    table, as_of = latest_rows(lakehouse, "gold.segment_changes", "as_of")
    frame = table.groupBy("kind", "segment") \
        .pivot("change", ["entered", "left"]).count().na.fill(0) \
        .orderBy("kind", "segment").toPandas()
    previous = table.agg(F.max("previous_as_of")).first()[0]
    section.intro += (f" As of {as_of}, since {previous}." if previous
                      else f" As of {as_of}: the first publish, so every member entered.")
    section.tables.append(("Entered and left", frame))
    return section


def activation(lakehouse: Lakehouse) -> Section:
    section = Section("activation", "Holdouts and lift",
                      "Each segment's holdout (kept out of exports) and, once outcomes after "
                      "an activation date are in, the treatment group's lift over it "
                      "(seglake measure).")
    if not lakehouse.exists(ASSIGNMENTS):
        section.missing = f"no holdouts yet: {_hint(lakehouse, ASSIGNMENTS)}"
        return section
    groups, as_of = latest_rows(lakehouse, ASSIGNMENTS, "as_of")
    sizes = groups.groupBy("kind").agg(
        F.countDistinct("segment").alias("segments"), F.count(F.lit(1)).alias("members"),
        F.sum((F.col("group") == "holdout").cast("int")).alias("holdout")) \
        .withColumn("holdout share", F.col("holdout") / F.col("members")) \
        .orderBy("kind").toPandas()
    section.tables.append((f"Holdout groups as of {as_of}", sizes))
    if not lakehouse.exists(LIFT):
        section.missing = f"no lift measured yet: {_hint(lakehouse, LIFT)}"
        return section
    lift, activated = latest_rows(lakehouse, LIFT, "activated_on")
    days = lift.agg(F.max("window_days")).first()[0]
    section.intro += f" Activation on {activated}, {days} days of outcomes."
    frame = lift.where(F.col("kind").isin("rule", "cluster")).select(
        "kind", "segment", "metric", "n_treatment", "n_holdout", "treatment_value",
        "holdout_value", "difference", "ci_low", "ci_high", "p_value") \
        .orderBy("kind", "segment", "metric").toPandas()
    section.tables.append(("Lift of rule segments and clusters", frame))
    rates = frame[frame["metric"] == "conversion"].dropna(subset=["ci_low"])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rates) + 1.2))
    y = np.arange(len(rates))
    ax.errorbar(rates["difference"], y, xerr=[rates["difference"] - rates["ci_low"],
                                               rates["ci_high"] - rates["difference"]],
                fmt="o", color="#4878a8", capsize=3)
    ax.axvline(0.0, color="grey", linestyle=":")
    ax.set_yticks(y, [f"{k}: {s}" for k, s in zip(rates["kind"], rates["segment"],
                                                   strict=True)])
    ax.set_xlabel("conversion, treatment minus holdout")
    ax.set_title(f"Conversion lift after {activated} (interval)")
    section.figures.append(("Conversion lift with its interval", png(fig)))
    uplift_models(lakehouse, section)
    return section


def uplift_models(lakehouse: Lakehouse, section: Section) -> None:
    """The uplift models of the latest measure run: Qini coefficients of their cross-fitted
    uplift against the propensity score's, and the Qini curves of the first."""
    if not lakehouse.exists("ops.models"):
        return
    models = lakehouse.read("ops.models").where(F.col("kind") == "uplift")
    latest = models.orderBy(F.desc("version")).select("run_id").first()
    if latest is None:
        section.intro += (" No uplift model: no segment's conversion moved significantly "
                          "with enough members in each group.")
        return
    rows = [(json.loads(r["params"]), json.loads(r["metrics"]), r["version"])
            for r in models.where(F.col("run_id") == latest[0]).orderBy("version").collect()]
    section.tables.append(("Uplift models (two-model forests, cross-fitted)", pd.DataFrame(
        [(p["kind"], p["segment"], v, m["activated_on"], m["n_treatment"], m["n_holdout"],
          m["qini"], m["qini_propensity"]) for p, m, v in rows],
        columns=["kind", "segment", "version", "learnt from", "n treatment", "n holdout",
                 "Qini (uplift)", "Qini (propensity)"])))
    params, metrics, _ = rows[0]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, key in (("uplift", "curve"), ("propensity", "curve_propensity")):
        if metrics.get(key):
            curve = pd.DataFrame(metrics[key])
            ax.plot(curve["share"], curve["qini"], marker="o", markersize=3,
                    label=f"ranked by {name}")
    end = metrics["curve"][-1]["qini"]
    ax.plot([0, 1], [0, end], ":", color="grey", label="random")
    ax.set_xlabel("share of the segment targeted (ranked)")
    ax.set_ylabel("incremental conversions per treated member")
    ax.legend()
    ax.set_title(f"Qini: {params['kind']}: {params['segment']}")
    section.figures.append(("Qini curve (cross-fitted uplift against the propensity score)",
                            png(fig)))


def monitoring(lakehouse: Lakehouse) -> Section:
    section = Section("monitoring", "Monitoring",
                      "Rows per day of every activity source (a drop against the same weekday "
                      "before is an alert) and the alerts of the latest `seglake monitor`.")
    series = daily_counts(lakehouse)
    if not series:
        section.missing = "no activity in silver yet: run `seglake refine`"
        return section
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for (_, source), counts in sorted(series.items()):
        days = sorted(counts)
        ax.plot(days, [counts[d] for d in days], linewidth=1, label=source)
    ax.set_yscale("log")
    ax.set_ylabel("rows per day")
    ax.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    section.figures.append(("Rows per day by source", png(fig)))
    if not lakehouse.exists(ALERTS):
        section.intro += " No monitor run has raised an alert."
        return section
    alerts, _ = latest_rows(lakehouse, ALERTS, "checked_at")
    section.intro += f" Latest alerts: run {alerts.first()['run_id']}."
    section.tables.append(("Alerts of the latest monitor run with alerts", alerts.select(
        "severity", "check", "table", "subject", "value", "threshold", "message")
        .orderBy("severity", "check", "subject").toPandas()))
    return section


SECTIONS: tuple[Callable[[Lakehouse], Section], ...] = (
    overview, quality, identity, cohorts, flags, segments, profiles, k_selection, pca,
    propensity, recommendations, changes, activation, monitoring)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}nav a{margin-right:1em}section{border-top:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.2em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}.missing{color:#a33}
"""


def _table_html(caption: str, frame: pd.DataFrame) -> str:
    if frame.empty:
        return f"<p><b>{html.escape(caption)}</b>: none.</p>"
    body = frame.to_html(index=False, border=0, float_format=lambda x: f"{x:,.3f}",
                         na_rep="", escape=True)
    return f"<h3>{html.escape(caption)}</h3>\n{body}"


def render(sections: Sequence[Section], *, run_id: str, lakehouse_root: str) -> str:
    """The whole report as one HTML document (no external files or scripts)."""
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>seglake report {html.escape(run_id)}</title><style>{STYLE}</style></head>"
             f"<body><h1>seglake report</h1><p>Run {html.escape(run_id)}, {created}; lakehouse "
             f"{html.escape(lakehouse_root)}.</p><nav>"
             + "".join(f"<a href='#{s.id}'>{html.escape(s.title)}</a>" for s in sections)
             + "</nav>"]
    for s in sections:
        parts.append(f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>"
                     f"<p>{html.escape(s.intro)}</p>")
        if s.missing:
            parts.append(f"<p class='missing'>{html.escape(s.missing)}</p>")
        parts += [_table_html(caption, frame) for caption, frame in s.tables]
        parts += [f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                  f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                  for caption, data in s.figures]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def latest_report(reports_root: str) -> str | None:
    """The newest report's path (run ids sort by time), or None."""
    found = sorted(glob.glob(os.path.join(reports_root, "report-*", "report.html")))
    return found[-1] if found else None


def run_report(spark: SparkSession, config: SeglakeConfig,
               runlog: RunLog | None = None) -> ReportResult:
    """Write ``<reports.root>/<run_id>/report.html`` and record it in ``ops.run_log``."""
    started = time.monotonic()
    lakehouse = Lakehouse.from_config(spark, config)
    if not lakehouse.exists(RUN_LOG):
        raise ReportError(f"no pipeline run found in {lakehouse.root}: run the stages first "
                          "(seglake run, or make demo)")
    runlog = runlog or RunLog(lakehouse, "report")
    sections = []
    for build in SECTIONS:
        log.info("report: %s", build.__name__)
        sections.append(build(lakehouse))
    document = render(sections, run_id=runlog.run_id, lakehouse_root=lakehouse.root)
    folder = os.path.join(config.reports.root, runlog.run_id)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "report.html")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        out.write(document)
    os.replace(path + ".tmp", path)  # a reader never sees half a report
    figures = sum(len(s.figures) for s in sections)
    runlog.record(rows_in=len(lakehouse.tables()), rows_out=len(sections),
                  message=f"{path}: {len(sections)} sections, {figures} figures")
    runlog.flush()
    return ReportResult(runlog.run_id, path, [s.id for s in sections], figures,
                        time.monotonic() - started)
