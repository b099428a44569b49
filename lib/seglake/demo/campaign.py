"""``seglake demo campaign``: the marketing side of the demo. A campaign goes out to the
published export of some segments (the treatment group's consenting members: what a marketing
tool receives), and the world lives on with its effect: each reached person buys once more in
the window with a chance of its own: the segment's ``effect`` scaled by how much the person
reads email (a drive-to-store offer sent by email). The truth keeps who was reached, each one's
chance and every order of theirs in the window, the offer's own marked, so the true lift of
each segment (``true_lift``) and the true effect on each customer (``true_uplift``) are known.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.demo.files import Storage
from seglake.demo.generate import CAMPAIGNS, DemoError, DemoResult, DemoSpec, generate

log = logging.getLogger(__name__)

DEFAULT_EFFECT = 0.5  # chance that a reached person takes the offer (largest segment)


@dataclass
class CampaignResult:
    campaign: str
    activated_on: dt.date
    window_days: int
    reached: dict[str, int]          # segment -> customers in the export
    effects: dict[str, float]        # segment -> chance a reached person takes the offer
    world: DemoResult


def latest_export(reports_root: str, kind: str) -> tuple[dt.date, str]:
    """The as_of and Parquet folder of the latest export of ``kind``."""
    root = Path(reports_root) / "exports"
    dates = sorted(p.name for p in root.glob("*") if (p / kind / "parquet").is_dir()) \
        if root.is_dir() else []
    if not dates:
        raise DemoError(f"no {kind} export under {root}: run `seglake publish` first (the "
                        "campaign goes to the published treatment groups)")
    return dt.date.fromisoformat(dates[-1]), str(root / dates[-1] / kind / "parquet")


def parse_effects(items: list[str] | None) -> dict[str, float] | None:
    """``SEGMENT=EFFECT`` items -> {segment: effect}; None: the demo's default choice."""
    if not items:
        return None
    effects = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            effect = float(value)
        except ValueError:
            effect = -1.0
        if not sep or not name or not 0.0 <= effect <= 1.0:
            raise DemoError(f"--effect {item!r}: give SEGMENT=EFFECT with an effect between 0 "
                            "and 1 (the chance a reached customer takes the offer)")
        effects[name] = effect
    return effects


def reached_persons(spark: SparkSession, export: DataFrame, identity_map: DataFrame,
                    crm_records: DataFrame) -> DataFrame:
    """Export rows (segment, customer_key) -> the demo persons behind each customer's CRM
    records (person_id, customer_key, segment)."""
    records = identity_map.where(F.col("id_kind") == "record_key").select(
        F.col("id_value").alias("record_key"), "customer_key")
    owners = crm_records.select(F.concat_ws(":", "system", "crm_id").alias("record_key"),
                                "person_id")
    return export.select("segment", "customer_key").join(records, "customer_key") \
        .join(owners, "record_key").select("person_id", "customer_key", "segment").distinct()


def simulate_campaign(spark: SparkSession, landing_root: str, truth_root: str,
                      reports_root: str, identity_map: DataFrame, kind: str = "rule",
                      effects: dict[str, float] | None = None, window_days: int = 28
                      ) -> CampaignResult:
    """Send the latest export of ``kind`` a campaign the day after the world's last files, and
    extend the world ``window_days``."""
    storage = Storage(spark)
    text = storage.read_text(f"{truth_root.rstrip('/')}/manifest.json")
    if text is None:
        raise DemoError(f"no demo world in {truth_root}: run `seglake demo generate` first")
    manifest = json.loads(text)
    spec = DemoSpec(**{**manifest["spec"], "start": dt.date.fromisoformat(
        manifest["spec"]["start"])})
    exported_on, folder = latest_export(reports_root, kind)
    day = spec.days  # the campaign goes out the day after the world's last files
    activated_on = spec.start + dt.timedelta(days=day)
    if exported_on > activated_on:
        raise DemoError(f"the latest {kind} export is as of {exported_on}, after the world's "
                        f"next day {activated_on}: generate the days up to it first")
    export = spark.read.parquet(folder)
    sizes = {r["segment"]: r["count"] for r in export.groupBy("segment").count().collect()}
    if effects is None:  # the largest segment answers; the others are not sent anything
        largest = max(sizes, key=lambda s: (sizes[s], s))
        effects = {largest: DEFAULT_EFFECT}
    unknown = sorted(set(effects) - set(sizes))
    if unknown:
        raise DemoError(f"--effect names {', '.join(unknown)}, not in the {kind} export as of "
                        f"{activated_on} (it holds {', '.join(sorted(sizes))})")
    campaign = f"ACT-{activated_on:%Y%m%d}-{kind}"
    log.info("campaign %s: the %s export as of %s goes out on %s", campaign, kind, exported_on,
             activated_on)
    chosen = export.where(F.col("segment").isin(list(effects)))
    effect = F.coalesce(*[F.when(F.col("segment") == s, F.lit(e)) for s, e in effects.items()])
    reached = reached_persons(spark, chosen, identity_map,
                              spark.read.parquet(f"{truth_root}/crm_records")).select(
        "person_id", "customer_key", "segment", F.lit(kind).alias("kind"),
        F.lit(campaign).alias("campaign"), F.lit(day).alias("activation_day"),
        F.lit(window_days).alias("window_days"), effect.alias("effect"))
    target = f"{truth_root.rstrip('/')}/{CAMPAIGNS}/reached/campaign_key={campaign}"
    reached.write.mode("overwrite").parquet(target)
    log.info("campaign %s: %d persons reached in %s", campaign,
             spark.read.parquet(target).count(), ", ".join(effects))
    world = generate(spark, dataclasses.replace(spec, days=day + window_days), landing_root,
                     truth_root)
    return CampaignResult(campaign, activated_on, window_days,
                          {s: sizes[s] for s in effects}, effects, world)


def true_lift(spark: SparkSession, truth_root: str, assignments: DataFrame) -> DataFrame:
    """Per (kind, segment) of the campaigns: the true effect on the treatment group's
    conversion and revenue per customer (members not reached count as unaffected), from the
    offers' own orders: a customer converted because of the campaign when its only completed
    orders in the window are offers. ``assignments``: the rows of the export's as_of."""
    root = f"{truth_root.rstrip('/')}/{CAMPAIGNS}"
    reached = spark.read.parquet(f"{root}/reached").select("person_id", "customer_key",
                                                            "kind", "segment", "campaign")
    orders = spark.read.parquet(f"{root}/orders").where(F.col("status") == "completed")
    per_customer = reached.join(orders, ["campaign", "person_id"]).groupBy(
        "kind", "segment", "customer_key").agg(
        F.max(F.col("offer").cast("int")).alias("_offer"),
        F.max((~F.col("offer")).cast("int")).alias("_organic"),
        F.sum(F.when(F.col("offer"), F.col("amount")).otherwise(0.0)).alias("_revenue"))
    effects = per_customer.groupBy("kind", "segment").agg(
        F.sum(F.when((F.col("_offer") == 1) & (F.col("_organic") == 0), 1).otherwise(0))
        .alias("converted_by_offer"), F.sum("_revenue").alias("offer_revenue"))
    treated = assignments.where(F.col("group") == "treatment").groupBy("kind", "segment") \
        .agg(F.count(F.lit(1)).alias("n_treatment"))
    sent = reached.select("kind", "segment").distinct()
    return treated.join(sent, ["kind", "segment"]).join(effects, ["kind", "segment"], "left") \
        .select("kind", "segment", "n_treatment",
                (F.coalesce("converted_by_offer", F.lit(0)) / F.col("n_treatment"))
                .alias("true_conversion_lift"),
                (F.coalesce("offer_revenue", F.lit(0.0)) / F.col("n_treatment"))
                .alias("true_revenue_lift"))


def true_uplift(spark: SparkSession, truth_root: str) -> DataFrame:
    """Per reached customer (kind, segment, customer_key): its chance of taking the offer, the
    campaign's true effect on it (the highest of its persons')."""
    root = f"{truth_root.rstrip('/')}/{CAMPAIGNS}"
    reached = spark.read.parquet(f"{root}/reached").select("person_id", "customer_key", "kind",
                                                            "segment", "campaign")
    return reached.join(spark.read.parquet(f"{root}/chances"), ["campaign", "person_id"]) \
        .groupBy("kind", "segment", "customer_key").agg(F.max("chance").alias("chance"))
