"""Identity-resolution benchmark: time to resolve, candidate pairs, and pairwise precision and
recall of CRM de-duplication against the demo truth, at two scales and how they grow.

Usage: python bench/identity_bench.py [--scales small,medium] [--out bench/out/identity]
Each scale's world is generated, ingested and refined under ``<out>/<scale>`` (reused when it
holds that scale already); only ``seglake resolve`` is timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from common import refined_world
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.identity import run_resolve
from seglake.identity.evaluation import pair_scores
from seglake.lakehouse import Lakehouse
from seglake.session import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="small,medium")
    parser.add_argument("--out", default="bench/out/identity")
    args = parser.parse_args()
    figures = []
    spark = None
    for scale in args.scales.split(","):
        out = Path(args.out) / scale
        base = SeglakeConfig.model_validate({"spark": {"master": "local[*]"}})
        spark = spark or get_spark(base)
        config = refined_world(spark, scale, out)
        started = time.monotonic()
        result = run_resolve(spark, config)
        seconds = time.monotonic() - started
        lakehouse = Lakehouse.from_config(spark, config)
        predicted = lakehouse.read("silver.identity_map").where("id_kind = 'record_key'") \
            .select(F.col("id_value").alias("record_key"), "customer_key")
        truth = spark.read.parquet(f"{config.truth.root}/crm_records").select(
            F.concat_ws(":", "system", "crm_id").alias("record_key"), "person_id")
        scores = pair_scores(predicted, truth)
        figures.append((scale, result, seconds, scores))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    print(f"{'scale':<8} {'records':>9} {'customers':>10} {'candidate pairs':>16} "
          f"{'all pairs':>15} {'resolve s':>10} {'precision':>10} {'recall':>8}")
    for scale, r, seconds, s in figures:
        print(f"{scale:<8} {r.records:>9,} {r.crm_customers:>10,} {r.candidate_pairs:>16,} "
              f"{r.records * (r.records - 1) // 2:>15,} {seconds:>10.1f} "
              f"{s.precision:>10.4f} {s.recall:>8.4f}")
    print("targets at medium: precision >= 0.98, recall >= 0.95")
    if len(figures) > 1:
        (a, ra, sa, _), (b, rb, sb, _) = figures[0], figures[-1]
        growth = rb.records / ra.records
        print(f"{a} -> {b}: records x{growth:.1f}, candidate pairs "
              f"x{rb.candidate_pairs / ra.candidate_pairs:.1f}, resolve time x{sb / sa:.1f} "
              "(linear would match the records' factor)")


if __name__ == "__main__":
    main()
