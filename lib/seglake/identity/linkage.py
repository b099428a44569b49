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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.config import ComparisonConfig, IdentityConfig
from seglake.identity.blocking import (
    RuleUse,
    chosen_rules,
    pair_budget,
    recall_proxies,
    splink_rule,
    uses,
)
from seglake.identity.normalise import address_key, code_key, folded, name_key
from seglake.privacy import e164_phone, email_key
from seglake.session import arrow_frame

log = logging.getLogger(__name__)

ID = "unique_id"  # Splink's record id column


def _normaliser(method: str, region: str, country: str) -> Callable[[Column], Column]:
    return {
        "name": lambda c: name_key(c, country), "text": lambda c: address_key(c, country),
        "postcode": code_key, "identifier": code_key, "email": email_key,
        "phone": lambda c: e164_phone(c, region), "date": lambda c: c.cast("date"),
        "exact": folded,
    }[method]


def comparison_frame(records: DataFrame, config: IdentityConfig, region: str,
                     keep: tuple[str, ...] = ()) -> DataFrame:
    """One row per CRM record: its id, the comparison form of every compared column and the
    Soundex code (``<column>_soundex``) of every compared name (then the ``keep`` columns of
    ``records``)."""
    missing = [c.column for c in config.comparisons if c.column not in records.columns]
    if missing:
        raise ValueError(f"identity.comparisons name columns the CRM records lack: {missing}; "
                         f"available: {sorted(records.columns)}")
    normalised = records.select(F.col("record_key").alias(ID), *[
        _normaliser(c.method, region, config.country)(F.col(c.column)).alias(c.column)
        for c in config.comparisons], *keep)
    return normalised.select(*[c for c in normalised.columns if c not in keep], *[
        F.soundex(c.column).alias(f"{c.column}_soundex")  # blocking keys that survive a typo
        for c in config.comparisons if c.method == "name"], *keep)


# leading postcode characters that name an area (French département, US sectional centre…)
POSTCODE_AREA = {"FR": 2, "BE": 2, "LU": 2, "DE": 2, "AT": 2, "CH": 2, "ES": 2, "IT": 3,
                 "NL": 4, "US": 3, "CA": 3, "AU": 2, "PT": 4, "DK": 2, "SE": 3, "PL": 2}


def _postcode(column: str, country: str) -> Any:
    """UK postcodes by Splink's own comparison (sector, district, area); elsewhere exact, one
    typo, then the country's area prefix."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    if country.upper() in ("GB", "UK"):
        return cl.PostcodeComparison(column)
    levels = [cll.NullLevel(column), cll.ExactMatchLevel(column),
              cll.DamerauLevenshteinLevel(column, 1)]
    area = POSTCODE_AREA.get(country.upper())
    if area:
        levels.append(cll.CustomLevel(
            f'substr("{column}_l", 1, {area}) = substr("{column}_r", 1, {area})',
            f"same {area}-character postcode area", base_dialect_str="duckdb"))
    return cl.CustomComparison([*levels, cll.ElseLevel()], output_column_name=column)


def _comparison(c: ComparisonConfig, country: str) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    made = {
        "name": lambda: cl.NameComparison(c.column),
        "date": lambda: cl.DateOfBirthComparison(c.column, input_is_string=False),
        "postcode": lambda: _postcode(c.column, country),
        "email": lambda: cl.EmailComparison(c.column),
        "phone": lambda: cl.ExactMatch(c.column),
        "text": lambda: cl.LevenshteinAtThresholds(c.column, [2, 5]),
        "identifier": lambda: cl.DamerauLevenshteinAtThresholds(c.column, [1]),
        "exact": lambda: cl.ExactMatch(c.column),
    }[c.method]()
    if c.implied_by:  # agreeing on both is one fact: this one then says nothing
        neutral = cll.CustomLevel(
            f'"{c.column}_l" IS NULL OR "{c.column}_r" IS NULL OR '
            f'"{c.implied_by}_l" = "{c.implied_by}_r"',
            f"no {c.column} evidence (null, or {c.implied_by} agrees)",
            base_dialect_str="duckdb",  # written with DuckDB's quotes, translated for Spark
        ).configure(is_null_level=True)
        made = cl.CustomComparison([neutral, *made.create_comparison_levels()[1:]],
                                   output_column_name=c.column)
    return made.configure(term_frequency_adjustments=True) if c.term_frequency else made


def splink_settings(config: IdentityConfig) -> Any:
    """The Splink model definition built from config (comparisons and blocking rules)."""
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[_comparison(c, config.country) for c in config.comparisons],
        blocking_rules_to_generate_predictions=[splink_rule(r) for r in config.blocking],
        **({} if config.match_prior is None
           else {"probability_two_random_records_match": config.match_prior}),
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


@dataclass
class Linkage:
    """What one linkage run produced: the model, its scored pairs and the record clusters."""

    model_json: dict[str, Any]
    pairs: DataFrame          # unique_id_l, unique_id_r, match_probability, match_weight, rule
    edges: DataFrame          # the pairs at or above the threshold, once each (persisted)
    clusters: DataFrame       # unique_id, cluster_id
    candidate_pairs: int
    charts: dict[str, Any]    # name -> Splink chart (altair), for the diagnostics
    blocking: list[RuleUse] = field(default_factory=list)  # the rules weighed, when trained
    batch_records: int | None = None    # incremental: the new and changed records scored
    touched_records: int | None = None  # incremental: the records re-clustered
    touched: DataFrame | None = None    # incremental: their unique_id, and the removed ones'
    engine: str = field(kw_only=True)   # where Splink ran (ENGINES): every maker says


def exact_pairs(identifier_pairs: DataFrame) -> DataFrame:
    """Pairs linked outright (``deterministic_edges``) as scored pairs: probability 1, no
    weight."""
    return identifier_pairs.withColumn("match_probability", F.lit(1.0)) \
        .withColumn("match_weight", F.lit(None).cast("double"))


def matched_edges(pairs: DataFrame, threshold: float) -> DataFrame:
    """The pairs at or above ``threshold``, each pair once with its best probability and
    weight: the graph's edges, what clustering joins and silver.identity_links keeps."""
    return pairs.where(F.col("match_probability") >= threshold) \
        .groupBy(f"{ID}_l", f"{ID}_r").agg(F.max("match_probability").alias("match_probability"),
                                            F.max("match_weight").alias("match_weight"))


def _clusters(engine: _Engine, nodes: Any, edges: DataFrame, threshold: float) -> DataFrame:
    """Connected components of ``edges`` over ``nodes`` (as the engine reads them)."""
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    return engine.to_spark(cluster_pairwise_predictions_at_threshold(
        nodes, engine.local(edges.select(f"{ID}_l", f"{ID}_r", "match_probability")),
        engine.api, ID, threshold_match_probability=threshold,
    )).select(ID, F.col("cluster_id").cast("string")).persist()


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
        return arrow_frame(self.spark, table.as_pyarrow_table())

    def count(self, table: Any) -> int:
        if self.name == "spark":
            return int(table.as_spark_dataframe().count())
        return int(table.as_duckdbpyrelation().aggregate("count(*)").fetchall()[0][0])


def filled_config(frame: DataFrame | pa.Table,
                  config: IdentityConfig) -> tuple[IdentityConfig, list[str]]:
    """``config`` without the compared columns that hold no value in ``frame`` (Spark or
    Arrow; and the rules that use them), with a note of what went: data without phones or
    names still links."""
    if isinstance(frame, pa.Table):
        filled = {c.column: len(frame) - frame[c.column].null_count for c in config.comparisons}
    else:
        filled = frame.select([F.count(c.column).alias(c.column)
                               for c in config.comparisons]).first().asDict()
    empty = {c for c, n in filled.items() if not n}
    if not empty:
        return config, []
    kept = config.model_copy(update={
        "comparisons": [c.model_copy(update={"implied_by": None})
                        if c.implied_by in empty else c
                        for c in config.comparisons if c.column not in empty],
        "blocking": [r for r in config.blocking if not uses(r, empty)],
        "deterministic": [r for r in config.deterministic if not uses(r, empty)],
        "training_blocks": [r for r in config.training_blocks if not uses(r, empty)],
        "prior_rules": [r for r in config.prior_rules if not uses(r, empty)]})
    return kept, [f"no CRM record has {', '.join(sorted(empty))}: not compared"]


def _deterministic_linkage(frame: DataFrame, config: IdentityConfig, engine: _Engine,
                           why: str) -> Linkage:
    """Records linked by exact agreement on a deterministic column set only."""
    pairs = exact_pairs(deterministic_edges(frame, config.deterministic)).persist()
    edges = matched_edges(pairs, config.match_threshold).persist()
    clusters = _clusters(engine, engine.local(frame.select(ID)), edges, config.match_threshold)
    model = {"matching": "deterministic", "deterministic": config.deterministic, "why": why}
    return Linkage(model, pairs, edges, clusters, pairs.count(), {}, engine=engine.name)


def _fallback(frame: DataFrame, config: IdentityConfig, engine: _Engine, why: str) -> Linkage:
    """Exact links only, said loudly: the probabilistic model could not be built (``why``)."""
    log.warning("resolve: %s", why)
    return _deterministic_linkage(frame, config, engine, why)


def _estimate_prior(linker: Any, config: IdentityConfig) -> None:
    """The probability that two random records match, from the pairs that agree on an
    identifier, else on the prior rules (strict agreement on names and birth date), each with
    the share of true pairs it is assumed to find; Splink's default when neither pairs any."""
    for rules, recall, name in ((config.deterministic, 0.7, "identity.deterministic"),
                                (config.prior_rules, 0.5, "identity.prior_rules")):
        if not rules:
            continue
        try:
            linker.training.estimate_probability_two_random_records_match(
                [splink_rule(r) for r in rules], recall=recall)
            log.info("resolve: match prior estimated from %s", name)
            return
        except (ValueError, ZeroDivisionError, IndexError) as exc:
            log.info("resolve: the match prior could not be estimated from %s (%s)", name, exc)
    log.warning("resolve: no identifier or prior rule pairs any records: Splink's default "
                "match prior kept; set identity.match_prior")


def link(spark: SparkSession, frame: DataFrame, config: IdentityConfig,
         model_json: dict[str, Any] | None = None, records: int | None = None,
         local: pa.Table | None = None) -> Linkage:
    """Train (or reuse) the model, score candidate pairs, cluster at the threshold; link on
    exact identifiers only when configured so or when nothing can be trained (warned).
    ``local``: ``frame`` already in the driver, as Arrow (what Splink on DuckDB reads)."""
    from splink import Linker
    from splink.internals.exceptions import EMTrainingException

    n_records = frame.count() if records is None else records
    engine = _Engine(spark, chosen_engine(
        config, n_records,
        model_json if model_json and "matching" not in model_json else None))
    log.info("linkage on %s (identity.engine %s)", engine.name, config.engine)
    if model_json and model_json.get("matching") == "deterministic":
        return _deterministic_linkage(frame, config, engine, "reused a deterministic model")
    if config.matching == "deterministic":
        return _deterministic_linkage(frame, config, engine, "identity.matching deterministic")
    if engine.name != "duckdb":
        local = None
    if model_json is None:
        config, notes = filled_config(frame if local is None else local, config)
        for note in notes:
            log.info("resolve: %s", note)
        if not (config.comparisons and config.blocking and config.training_blocks):
            why = ("no compared column holds values, or no blocking rule or training block is "
                   "left: linked on identity.deterministic columns only; map names, emails or "
                   "phones onto the customers input, or set identity.matching: deterministic")
            return _fallback(frame, config, engine, why)
    records_in = engine.local(frame) if local is None else local
    table = engine.api.register(records_in)
    weighed: list[RuleUse] = []
    if model_json is None:
        kept, weighed = chosen_rules(table, config.blocking, n_records,
                                     pair_budget(config, n_records))
        if not kept:
            why = ("every blocking rule would pass the pair budget: linked on "
                   "identity.deterministic columns only; raise identity.max_pairs or add "
                   "narrower identity.blocking rules")
            return _fallback(frame, config, engine, why)
        config = config.model_copy(update={"blocking": kept})
    linker = Linker(table, model_json or splink_settings(config))
    if model_json is None:
        log.info("training the linkage model (u by sampling %d pairs, EM on %d blocks)",
                 config.u_max_pairs, len(config.training_blocks))
        if config.match_prior is None:
            _estimate_prior(linker, config)
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.u_max_pairs, seed=config.seed, num_chunks=1)
        trained = 0
        for block in config.training_blocks:
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(splink_rule(block))
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
            return _fallback(frame, config, engine, why)
    # cached: predict scores these same pairs
    candidates = engine.count(linker.inference.compute_blocked_pairs_for_predict())
    floor = min(0.5, config.match_threshold)
    scored = engine.to_spark(linker.inference.predict(threshold_match_probability=floor))
    scored = scored.select(
        F.least(f"{ID}_l", f"{ID}_r").alias(f"{ID}_l"),
        F.greatest(f"{ID}_l", f"{ID}_r").alias(f"{ID}_r"),
        "match_probability", "match_weight", F.lit("splink").alias("rule")).persist()
    identifier_pairs = deterministic_edges(frame, config.deterministic)
    if weighed and config.deterministic:  # no identifier rule: no identifier-linked pair
        weighed = recall_proxies(frame, identifier_pairs, config, weighed, config.blocking, ID)
    if config.deterministic_links:
        pairs = exact_pairs(identifier_pairs).unionByName(scored).persist()
    else:  # scored like any pair: a shared family email does not merge two people
        pairs = scored
    edges = matched_edges(pairs, config.match_threshold).persist()
    nodes = records_in.select([ID]) if engine.name == "duckdb" else frame.select(ID)
    clusters = _clusters(engine, nodes, edges, config.match_threshold)
    return Linkage(linker.misc.save_model_to_json(), pairs, edges, clusters, candidates,
                   model_charts(linker), weighed, engine=engine.name)


def model_charts(linker: Any) -> dict[str, Any]:
    """Splink's charts of the model (for the diagnostics and the report)."""
    return {"match_weights": linker.visualisations.match_weights_chart(),
            "m_u_parameters": linker.visualisations.m_u_parameters_chart()}
