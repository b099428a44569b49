"""Probabilistic record linkage of CRM records with Splink: the comparison frame, the model
(settings as data, trained by EM without labels), scored pairs and clusters.

Splink runs on Spark, or on DuckDB in the driver (``identity.engine``). Splink on Spark is
dominated by the fixed cost of its many small jobs (2,000 records: ~55 s against ~5 s on DuckDB),
so ``auto`` takes DuckDB up to ``identity.local_max_records`` records and Spark above.

Deterministic links (exact agreement on configured column sets) are edges of probability 1;
Splink's scored pairs above the threshold are the others; connected components of both are the
clusters. Star edges (every record to the smallest id sharing the value) keep deterministic
links linear in the group size.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.config import ComparisonConfig, IdentityConfig
from seglake.identity.normalise import address_key, folded, name_key, postcode_key
from seglake.privacy import e164_phone, email_key

log = logging.getLogger(__name__)

ID = "unique_id"  # Splink's record id column


def _normaliser(method: str, region: str) -> Callable[[Column], Column]:
    return {
        "name": name_key, "text": address_key, "postcode": postcode_key, "email": email_key,
        "phone": lambda c: e164_phone(c, region), "date": lambda c: c.cast("date"),
        "exact": folded,
    }[method]


def comparison_frame(records: DataFrame, config: IdentityConfig, region: str) -> DataFrame:
    """One row per CRM record: its id and the comparison form of every compared column."""
    missing = [c.column for c in config.comparisons if c.column not in records.columns]
    if missing:
        raise ValueError(f"identity.comparisons name columns the CRM records lack: {missing}; "
                         f"available: {sorted(records.columns)}")
    return records.select(F.col("record_key").alias(ID), *[
        _normaliser(c.method, region)(F.col(c.column)).alias(c.column)
        for c in config.comparisons])


def _comparison(c: ComparisonConfig) -> Any:
    import splink.comparison_library as cl

    made = {
        "name": lambda: cl.NameComparison(c.column),
        "date": lambda: cl.DateOfBirthComparison(c.column, input_is_string=False),
        "postcode": lambda: cl.PostcodeComparison(c.column),
        "email": lambda: cl.EmailComparison(c.column),
        "phone": lambda: cl.ExactMatch(c.column),
        "text": lambda: cl.LevenshteinAtThresholds(c.column, [2, 5]),
        "exact": lambda: cl.ExactMatch(c.column),
    }[c.method]()
    return made.configure(term_frequency_adjustments=True) if c.term_frequency else made


def _rule(rule: list[str] | str) -> Any:
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    return CustomRule(rule) if isinstance(rule, str) else block_on(*rule)


def splink_settings(config: IdentityConfig) -> Any:
    """The Splink model definition built from config (comparisons and blocking rules)."""
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[_comparison(c) for c in config.comparisons],
        blocking_rules_to_generate_predictions=[_rule(r) for r in config.blocking],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


@dataclass
class Linkage:
    """What one linkage run produced: the model, its scored pairs and the record clusters."""

    model_json: dict[str, Any]
    pairs: DataFrame          # unique_id_l, unique_id_r, match_probability, match_weight, rule
    clusters: DataFrame       # unique_id, cluster_id
    candidate_pairs: int
    charts: dict[str, Any]    # name -> Splink chart (altair), for the diagnostics


def deterministic_edges(frame: DataFrame, rules: list[list[str]]) -> DataFrame:
    """Edges of probability 1 between records agreeing exactly on every column of a rule:
    each record to the smallest id of its group (a star, not all pairs)."""
    edges = None
    for columns in rules:
        agree = F.lit(True)
        for c in columns:
            agree = agree & F.col(c).isNotNull()
        group = Window.partitionBy(*columns)
        star = frame.where(agree).select(
            F.min(ID).over(group).alias(f"{ID}_l"), F.col(ID).alias(f"{ID}_r")) \
            .where(F.col(f"{ID}_l") != F.col(f"{ID}_r")) \
            .withColumn("rule", F.lit("exact: " + ", ".join(columns)))
        edges = star if edges is None else edges.unionByName(star)
    schema = f"{ID}_l STRING, {ID}_r STRING, rule STRING"
    if edges is None:
        return frame.sparkSession.createDataFrame([], schema)
    return edges.select(F.least(f"{ID}_l", f"{ID}_r").alias(f"{ID}_l"),
                        F.greatest(f"{ID}_l", f"{ID}_r").alias(f"{ID}_r"), "rule")


ENGINES = ("spark", "duckdb")  # named as Splink names their SQL dialects


def chosen_engine(config: IdentityConfig, records: int,
                  model_json: dict[str, Any] | None = None) -> str:
    """The engine Splink runs on: a reused model's own (its SQL is in that dialect), else the
    configured one, ``auto`` meaning DuckDB up to ``local_max_records`` records."""
    if model_json is not None:
        dialect = model_json.get("sql_dialect", "spark")
        return dialect if dialect in ENGINES else "spark"
    if config.engine != "auto":
        return config.engine
    return "duckdb" if records <= config.local_max_records else "spark"


class _Engine:
    """Splink's database API and the moves of frames between it and Spark."""

    def __init__(self, spark: SparkSession, name: str) -> None:
        self.spark, self.name = spark, name
        if name == "duckdb":
            from splink import DuckDBAPI

            self.api = DuckDBAPI()
        else:
            from splink.backends.spark import SparkAPI

            self.api = SparkAPI(spark_session=spark)

    def local(self, frame: DataFrame) -> Any:
        """``frame`` as this engine reads it: Arrow in the driver for DuckDB."""
        return frame.toArrow() if self.name == "duckdb" else frame

    def to_spark(self, table: Any) -> DataFrame:
        if self.name == "spark":
            return table.as_spark_dataframe()
        from pyspark.sql.pandas.types import from_arrow_schema

        arrow = table.as_pyarrow_table()
        return self.spark.createDataFrame(arrow) if arrow.num_rows else \
            self.spark.createDataFrame([], from_arrow_schema(arrow.schema))

    def count(self, table: Any) -> int:
        if self.name == "spark":
            return int(table.as_spark_dataframe().count())
        return int(table.as_duckdbpyrelation().aggregate("count(*)").fetchall()[0][0])


def _uses(rule: list[str] | str, columns: set[str]) -> bool:
    text = rule if isinstance(rule, str) else " ".join(rule)
    return any(re.search(rf"\b{re.escape(c)}\b", text) for c in columns)


def filled_config(frame: DataFrame, config: IdentityConfig) -> tuple[IdentityConfig, list[str]]:
    """``config`` without the compared columns that hold no value in ``frame`` (and the rules
    that use them), with a note of what went: data without phones or names still links."""
    filled = frame.select([F.count(c.column).alias(c.column)
                           for c in config.comparisons]).first().asDict()
    empty = {c for c, n in filled.items() if not n}
    if not empty:
        return config, []
    kept = config.model_copy(update={
        "comparisons": [c for c in config.comparisons if c.column not in empty],
        "blocking": [r for r in config.blocking if not _uses(r, empty)],
        "deterministic": [r for r in config.deterministic if not _uses(r, empty)],
        "training_blocks": [r for r in config.training_blocks if not _uses(r, empty)]})
    return kept, [f"no CRM record has {', '.join(sorted(empty))}: not compared"]


def _deterministic_linkage(frame: DataFrame, config: IdentityConfig, engine: _Engine,
                           why: str) -> Linkage:
    """Records linked by exact agreement on a deterministic column set only."""
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    pairs = deterministic_edges(frame, config.deterministic) \
        .withColumn("match_probability", F.lit(1.0)) \
        .withColumn("match_weight", F.lit(None).cast("double")).persist()
    clusters = engine.to_spark(cluster_pairwise_predictions_at_threshold(
        engine.local(frame.select(ID)), engine.local(pairs.select(
            f"{ID}_l", f"{ID}_r", "match_probability")), engine.api, ID,
        threshold_match_probability=config.match_threshold,
    )).select(ID, F.col("cluster_id").cast("string")).persist()
    model = {"matching": "deterministic", "deterministic": config.deterministic, "why": why}
    return Linkage(model, pairs, clusters, pairs.count(), {})


def link(spark: SparkSession, frame: DataFrame, config: IdentityConfig,
         model_json: dict[str, Any] | None = None, records: int | None = None) -> Linkage:
    """Train (or reuse) the model, score candidate pairs, cluster at the threshold; link on
    exact identifiers only when configured so or when nothing can be trained (warned)."""
    from splink import Linker
    from splink.clustering import cluster_pairwise_predictions_at_threshold
    from splink.internals.exceptions import EMTrainingException

    engine = _Engine(spark, chosen_engine(
        config, frame.count() if records is None else records,
        model_json if model_json and "matching" not in model_json else None))
    log.info("linkage on %s (identity.engine %s)", engine.name, config.engine)
    if model_json and model_json.get("matching") == "deterministic":
        return _deterministic_linkage(frame, config, engine, "reused a deterministic model")
    if config.matching == "deterministic":
        return _deterministic_linkage(frame, config, engine, "identity.matching deterministic")
    if model_json is None:
        config, notes = filled_config(frame, config)
        for note in notes:
            log.info("resolve: %s", note)
        if not (config.comparisons and config.blocking and config.training_blocks):
            why = ("no compared column holds values, or no blocking rule or training block is "
                   "left: linked on identity.deterministic columns only; map names, emails or "
                   "phones onto the customers input, or set identity.matching: deterministic")
            log.warning("resolve: %s", why)
            return _deterministic_linkage(frame, config, engine, why)
    records_in = engine.local(frame)
    linker = Linker(engine.api.register(records_in), model_json or splink_settings(config))
    if model_json is None:
        log.info("training the linkage model (u by sampling %d pairs, EM on %d blocks)",
                 config.u_max_pairs, len(config.training_blocks))
        try:
            linker.training.estimate_probability_two_random_records_match(
                [_rule(r) for r in config.deterministic], recall=0.7)
        except (ValueError, ZeroDivisionError, IndexError) as exc:
            log.warning("resolve: the match prior could not be estimated from "
                        "identity.deterministic (%s: no exact pairs?): Splink's default kept",
                        exc)
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.u_max_pairs, seed=config.seed, num_chunks=1)
        trained = 0
        for block in config.training_blocks:
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(_rule(block))
                trained += 1
            except EMTrainingException:
                log.warning("EM on training block %s skipped: it pairs no records", block)
            except ValueError as exc:  # Splink 5 refuses an m of exactly 0 found by EM
                if "minimum allowed value" not in str(exc):
                    raise
                log.warning("EM on training block %s skipped (%s); the other blocks train "
                            "its levels", block, str(exc).split(" is below")[0])
        if not trained:
            why = ("EM could train on none of identity.training_blocks (no record pairs agree "
                   "on them): linked on identity.deterministic columns only; change "
                   "identity.training_blocks")
            log.warning("resolve: %s", why)
            return _deterministic_linkage(frame, config, engine, why)
    # cached: predict scores these same pairs
    candidates = engine.count(linker.inference.compute_blocked_pairs_for_predict())
    floor = min(0.5, config.match_threshold)
    scored = engine.to_spark(linker.inference.predict(threshold_match_probability=floor))
    scored = scored.select(
        F.least(f"{ID}_l", f"{ID}_r").alias(f"{ID}_l"),
        F.greatest(f"{ID}_l", f"{ID}_r").alias(f"{ID}_r"),
        "match_probability", "match_weight", F.lit("splink").alias("rule")).persist()
    exact = deterministic_edges(frame, config.deterministic) \
        .withColumn("match_probability", F.lit(1.0)) \
        .withColumn("match_weight", F.lit(None).cast("double"))
    pairs = exact.unionByName(scored).persist()
    edges = pairs.where(F.col("match_probability") >= config.match_threshold) \
        .groupBy(f"{ID}_l", f"{ID}_r").agg(F.max("match_probability").alias("match_probability"))
    nodes = records_in.select([ID]) if engine.name == "duckdb" else frame.select(ID)
    clusters = engine.to_spark(cluster_pairwise_predictions_at_threshold(
        nodes, engine.local(edges), engine.api, ID,
        threshold_match_probability=config.match_threshold,
    )).select(ID, F.col("cluster_id").cast("string")).persist()
    charts = {"match_weights": linker.visualisations.match_weights_chart(),
              "m_u_parameters": linker.visualisations.m_u_parameters_chart()}
    return Linkage(linker.misc.save_model_to_json(), pairs, clusters, candidates, charts)
