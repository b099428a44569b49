"""Resolve on a person register built unlike the demo (tests/people.py: syllable names, 4-digit
postcodes, one typo or gap per duplicate, no emails or phones): seglake's resolve stage against
Splink alone on the same records, and the pairwise quality of both with the default settings.

Usage: python bench/register_bench.py [--persons 6000] [--with-id 0.0] [--out bench/out/register]
The register is written straight into silver.customers_raw(_pii), as refine would leave it;
``seglake resolve`` is timed in a warm Spark session (start-up excluded, as for every stage),
first and again (``--full``; the session's Python workers warm, as Splink alone finds them).
Splink alone: the same comparison frame, already in the driver, linked by Splink on DuckDB with
the blocking rules resolve kept — training, prediction and clustering — as a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import StructType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from people import SCHEMA, people  # noqa: E402

from seglake.config import SeglakeConfig  # noqa: E402
from seglake.declarations import CUSTOMERS_RAW, CUSTOMERS_RAW_PII, declared  # noqa: E402
from seglake.identity import run_resolve  # noqa: E402
from seglake.identity.blocking import rule_text  # noqa: E402
from seglake.identity.evaluation import pair_scores  # noqa: E402
from seglake.identity.linkage import ID, comparison_frame, splink_settings  # noqa: E402
from seglake.lakehouse import Lakehouse  # noqa: E402
from seglake.lakehouse.schema import conform  # noqa: E402
from seglake.models import latest_model  # noqa: E402
from seglake.session import get_spark  # noqa: E402


def declared_frame(df, name: str):
    """``df`` with every declared column of ``name`` (nulls where it has none)."""
    return conform(df, StructType.fromDDL(declared(name).ddl), name)


def splink_alone(frame, config) -> tuple[float, object]:
    """Seconds Splink on DuckDB takes to train, predict and cluster ``frame`` (an Arrow table
    already in the driver), and its clusters."""
    from splink import DuckDBAPI, Linker, block_on
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    started = time.monotonic()
    api = DuckDBAPI()
    linker = Linker(api.register(frame), splink_settings(config))
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*r) for r in config.prior_rules], recall=0.5)
    linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs,
                                                     seed=config.seed, num_chunks=1)
    for block in config.training_blocks:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*block))
    scored = linker.inference.predict(threshold_match_probability=config.match_threshold)
    clusters = cluster_pairwise_predictions_at_threshold(
        api.register(frame.select([ID])), scored, api, ID,
        threshold_match_probability=config.match_threshold).as_pandas_dataframe()
    return time.monotonic() - started, clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=6_000)
    parser.add_argument("--with-id", type=float, default=0.0)
    parser.add_argument("--out", default="bench/out/register")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    config = SeglakeConfig.model_validate({
        "spark": {"master": "local[*]"}, "lakehouse": {"root": str(out / "lakehouse")},
        "reports": {"root": str(out / "reports")}, "privacy": {"demo_mode": True},
        "identity": {"country": "AU", "engine": "duckdb"}})
    spark = get_spark(config)
    register = spark.createDataFrame(people(args.persons, with_id=args.with_id), SCHEMA) \
        .withColumn("system", F.lit("register")) \
        .withColumn("source_id", F.element_at(F.split("record_key", ":"), 2)) \
        .withColumn("birth_year", F.year("birth_date")) \
        .withColumn("_source", F.lit("register")) \
        .withColumn("_source_file", F.lit("register.csv")).withColumn("_batch_id", F.lit(0)) \
        .persist()
    records = register.count()
    lakehouse = Lakehouse.from_config(spark, config)
    lakehouse.overwrite(CUSTOMERS_RAW, declared_frame(register, CUSTOMERS_RAW))
    lakehouse.overwrite(CUSTOMERS_RAW_PII, declared_frame(register, CUSTOMERS_RAW_PII))
    truth = register.select("record_key", "person_id")

    started = time.monotonic()
    result = run_resolve(spark, config)
    seglake_s = time.monotonic() - started
    predicted = lakehouse.read("silver.identity_map").where("id_kind = 'record_key'") \
        .select(F.col("id_value").alias("record_key"), "customer_key")
    ours = pair_scores(predicted, truth)
    # again, retrained: the session's Python workers and JIT warm, as Splink alone finds its
    # DuckDB and Splink after the first run
    started = time.monotonic()
    run_resolve(spark, config, full=True)
    warm_s = time.monotonic() - started

    kept = [r["rule"] for r in json.loads(
        latest_model(lakehouse, "identity-linkage")["metrics"])["blocking"] if r["kept"]]
    rules = [r for r in config.identity.blocking if rule_text(r) in kept]
    ident = config.identity.model_copy(update={
        "blocking": rules,
        "comparisons": [c for c in config.identity.comparisons
                        if c.column not in ("email", "phone")
                        and (args.with_id or c.column != "shared_id")]})
    frame = comparison_frame(register, ident, "AU").toArrow()
    alone_s, clusters = splink_alone(frame, ident)
    theirs = pair_scores(spark.createDataFrame(clusters[[ID, "cluster_id"]].astype(str))
                         .select(F.col(ID).alias("record_key"),
                                 F.col("cluster_id").alias("customer_key")), truth)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}; register of {args.persons:,} persons, {records:,} "
          f"records, national id on {args.with_id:.0%}")
    print(f"{'run':<22} {'seconds':>8} {'precision':>10} {'recall':>8} {'F1':>7}")
    for name, seconds, s in (("seglake resolve", seglake_s, ours),
                             ("seglake resolve, again", warm_s, ours),
                             ("Splink alone (DuckDB)", alone_s, theirs)):
        f1 = 2 * s.precision * s.recall / (s.precision + s.recall)
        print(f"{name:<22} {seconds:>8.1f} {s.precision:>10.4f} {s.recall:>8.4f} {f1:>7.4f}")
    print(f"resolve / Splink alone: {seglake_s / alone_s:.1f}x first in the session, "
          f"{warm_s / alone_s:.1f}x again (target <= 3, moonshot <= 1.5); "
          f"{result.candidate_pairs:,} candidate pairs")


if __name__ == "__main__":
    main()
