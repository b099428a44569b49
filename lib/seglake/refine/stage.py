"""Bronze -> silver: type, check rules, quarantine, remove exact duplicates, gate, write.

Each source refines the bronze batches no earlier refine logged as done. Writes replace the
rows of exactly those batches (``replace_where`` on ``_source`` and ``_batch_id``), so a run
killed between two commits is repaired, never duplicated, by the next one. The run log holds,
per source and batch: bronze rows = silver rows + quarantined + duplicates removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.config import SeglakeConfig
from seglake.declarations import QUARANTINE, RUN_LOG
from seglake.delivery import landing_path, sampled
from seglake.lakehouse import Lakehouse
from seglake.privacy import keyed_hash, pseudonymization_key
from seglake.refine.quality import QualityError, QualityGate
from seglake.refine.rules import broken_rules
from seglake.refine.tables import Context, Refinement, mapped, refinement
from seglake.runlog import RunLog
from seglake.tables import BRONZE_LINEAGE, CORRUPT, LINEAGE, bronze_table

log = logging.getLogger(__name__)



class RefineError(RuntimeError):
    """A source could not be refined; its silver tables are unchanged for the failing batch."""


@dataclass
class SourceResult:
    source: str
    batches: list[int] = field(default_factory=list)
    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined: int = 0
    duplicates: int = 0


def prepared(bronze: DataFrame, refinement: Refinement, ctx: Context) -> DataFrame:
    """Bronze rows with the raw record as ``_raw``, typed silver columns and ``_rules``."""
    declared = [c for c in bronze.columns if c not in BRONZE_LINEAGE]
    df = bronze.select(F.struct(*declared).alias("_raw"),
                       F.lit(refinement.source).alias("_source"), "_source_file", "_batch_id")
    df = refinement.typed(df, ctx)
    corrupt = F.col(f"_raw.{CORRUPT}") if CORRUPT in declared else None
    df = df.withColumn("_rules", broken_rules(refinement.rules(ctx), corrupt))
    if refinement.group is None:
        return df
    # a part that broke a rule sets its whole id aside: no order is kept short of a line
    whole = Window.partitionBy("_batch_id", refinement.id_column)
    return df.withColumn("_rules", F.when(
        (F.size("_rules") == 0) & (F.max(F.size("_rules")).over(whole) > 0),
        F.array(F.lit(f"incomplete:{refinement.id_column}"))).otherwise(F.col("_rules")))


def quarantined(df: DataFrame, refinement: Refinement, ctx: Context) -> DataFrame:
    """Rows that broke a rule, as delivered (JSON of the declared fields, or the unparsed text)."""
    fields = [f.name for f in df.schema["_raw"].dataType.fields if f.name != CORRUPT]
    record = F.to_json(F.struct(*[F.col(f"_raw.{f}").alias(f) for f in fields]))
    if CORRUPT in df.schema["_raw"].dataType.fieldNames():
        record = F.coalesce(F.col(f"_raw.{CORRUPT}"), record)
    subject = keyed_hash(F.col("_email"), ctx.key) if "_email" in df.columns \
        else F.lit(None).cast("string")
    return df.where(F.size("_rules") > 0).select(
        "_source", F.lit(refinement.table).alias("target_table"), F.col("_rules").alias("rules"),
        record.alias("raw_record"), subject.alias("subject_hash"), "_source_file", "_batch_id",
        F.current_timestamp().alias("quarantined_at"))


def first_of_each_id(good: DataFrame, id_column: str, earlier_ids: DataFrame | None,
                     part_key: str = "") -> DataFrame:
    """One row per id (per id and part, for parts of one row) from the earliest batch and
    file, without ids already in silver."""
    order = Window.partitionBy(id_column, *([part_key] if part_key else [])) \
        .orderBy("_batch_id", "_source_file")
    first = good.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")
    if earlier_ids is None:
        return first
    return first.join(earlier_ids, id_column, "left_anti")


def latest_of_each_key(df: DataFrame, keys: tuple[str, ...], latest_by: str) -> DataFrame:
    order = Window.partitionBy(*keys).orderBy(F.col(latest_by).desc_nulls_last(),
                                              F.col("_batch_id").desc())
    return df.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def _batches_predicate(source: str, batches: list[int]) -> str:
    return f"_source = '{source}' AND _batch_id IN ({', '.join(str(b) for b in batches)})"


def refined_batches(lakehouse: Lakehouse) -> dict[str, set[int]]:
    """{source: batches a refine completed}, from one read of the run log."""
    if not lakehouse.exists(RUN_LOG):
        return {}
    rows = lakehouse.read(RUN_LOG).where(
        (F.col("stage") == "refine") & (F.col("status") == "ok")
        & F.col("batch_id").isNotNull()).select("source", "batch_id").distinct().collect()
    done: dict[str, set[int]] = {}
    for r in rows:
        done.setdefault(r["source"], set()).add(r["batch_id"])
    return done


def pending_batches(lakehouse: Lakehouse, source: str,
                    done: dict[str, set[int]] | None = None) -> list[int]:
    """Bronze batches of ``source`` no refine has completed (``done``: ``refined_batches``,
    read once for many sources)."""
    table = bronze_table(source)
    if not lakehouse.exists(table):
        return []
    done = refined_batches(lakehouse) if done is None else done
    ingested = {r["_batch_id"] for r in
                lakehouse.read(table).select("_batch_id").distinct().collect()}
    return sorted(ingested - done.get(source, set()))


def held_batches(gate: QualityGate, outputs: dict[str, DataFrame], batches: list[int],
                 source: str, absent: frozenset[str]) -> dict[int, str]:
    """{batch: why} for the batches a blocking suite refuses, each judged on its own rows (all
    of a table's batches in one pass), so one bad delivery holds back only itself."""
    held: dict[int, str] = {}
    for name, df in outputs.items():
        verdicts = gate.check_groups(name, df, "_batch_id", batches, source, absent,
                                     raising=False)
        for batch, why in verdicts.items():
            if why:
                held.setdefault(batch, why)
    return held


def refine_source(
    lakehouse: Lakehouse, refinement: Refinement, ctx: Context, gate: QualityGate,
    runlog: RunLog, done: dict[str, set[int]] | None = None,
) -> SourceResult:
    source = refinement.source
    result = SourceResult(source)
    batches = pending_batches(lakehouse, source, done)
    if not batches:
        log.info("refine %s: nothing new in %s", source, bronze_table(source))
        return result
    result.batches = batches
    bronze = lakehouse.read(bronze_table(source)).where(F.col("_batch_id").isin(batches))
    # kept for the counts, the split and quarantine: the mapped values are done with, and only
    # a rejected row's raw record is needed (quarantine keeps it as delivered)
    rows = prepared(bronze, refinement, ctx).drop("_in").withColumn(
        "_raw", F.when(F.size("_rules") > 0, F.col("_raw"))).persist()
    kept, held = None, {}
    try:
        good = rows.where(F.size("_rules") == 0)
        earlier = None
        if not refinement.merge_on and lakehouse.exists(refinement.table):
            earlier = lakehouse.read(refinement.table).where(
                ~F.expr(_batches_predicate(source, batches))
                & (F.col("_source") == source)).select(refinement.id_column)
        kept = first_of_each_id(good, refinement.id_column, earlier,
                                refinement.part_key).persist()
        counts = {r["_batch_id"]: (r["rows"], r["bad"]) for r in rows.groupBy("_batch_id").agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum((F.size("_rules") > 0).cast("long")).alias("bad")).collect()}
        kept_counts = {r["_batch_id"]: r["count"] for r in kept.groupBy("_batch_id").count()
                       .collect()}
        whole = refinement.group(kept) if refinement.group else kept
        silver = whole.select(*refinement.columns, *LINEAGE)
        if refinement.merge_on:  # the latest state per key is what gets merged
            silver = latest_of_each_key(silver, refinement.merge_on, refinement.latest_by)
        outputs = {refinement.table: silver,
                   **{name: make(whole) for name, make in refinement.derived.items()}}
        held, set_aside = held_batches(gate, outputs, batches, source, refinement.absent), rows
        if held:
            for batch, why in held.items():
                log.error("refine %s: batch %d held back: %s", source, batch, why)
            if len(held) == len(batches):
                raise QualityError("; ".join(f"batch {b} held back: {why}"
                                             for b, why in held.items()))
            batches = result.batches = [b for b in batches if b not in held]
            keep = F.col("_batch_id").isin(batches)
            silver, set_aside = silver.where(keep), set_aside.where(keep)
            outputs = {name: df.where(keep) for name, df in outputs.items()}
        replace = _batches_predicate(source, batches)
        if refinement.merge_on:
            lakehouse.merge(refinement.table, silver, list(refinement.merge_on),
                            when_matched_update=f"s.{refinement.latest_by} >= "
                                                f"t.{refinement.latest_by}")
        else:
            lakehouse.overwrite(refinement.table, silver, replace_where=replace)
        for name in refinement.derived:
            lakehouse.overwrite(name, outputs[name], replace_where=replace)
        lakehouse.overwrite(QUARANTINE, quarantined(set_aside, refinement, ctx),
                            replace_where=replace)
    finally:
        rows.unpersist()
        if kept is not None:
            kept.unpersist()
    for batch in batches:
        total, bad = counts.get(batch, (0, 0))
        out = kept_counts.get(batch, 0)
        duplicates = total - bad - out
        runlog.record(source=source, table=refinement.table, batch_id=batch, rows_in=total,
                      rows_out=out, quarantined=bad, duplicates=duplicates)
        result.bronze_rows += total
        result.silver_rows += out
        result.quarantined += bad
        result.duplicates += duplicates
    if held:  # the other batches are in silver; these stay pending until they pass
        raise QualityError("; ".join(f"batch {b} held back: {why}" for b, why in held.items()))
    return result


def run_refine(
    spark: SparkSession, config: SeglakeConfig, sources: list[str] | None = None,
    runlog: RunLog | None = None,
) -> list[SourceResult]:
    """Refine every declared source (or those named) by its role and mapping; a mapping that
    cannot work stops before any Spark work, other failures are raised after the other
    sources ran."""
    names = sources or list(config.sources)
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise RefineError(f"unknown source(s) {unknown}; declared: "
                          f"{', '.join(config.sources)}")
    problems = [p for n in names for p in mapped(n, config.sources[n]).problems()]
    if problems:
        raise RefineError("; ".join(problems))
    known = {n: refinement(n, config.sources[n]) for n in names}
    key = pseudonymization_key(config.privacy)
    ctx = Context(config.refine, key, config.privacy.phone_region)
    lakehouse = Lakehouse.from_config(spark, config)
    runlog = runlog or RunLog(lakehouse, "refine")
    report = Path(config.reports.root) / runlog.run_id
    gate = QualityGate(lakehouse, config.quality, runlog.run_id, report)
    results, failures = [], []
    done = refined_batches(lakehouse)
    for name in names:
        try:
            results.append(refine_source(lakehouse, known[name], ctx, gate, runlog, done))
        except Exception as exc:  # noqa: BLE001 - logged with the source, raised below
            log.error("refine %s failed: %s", name, exc)
            runlog.record(source=name, table=known[name].table, status="failed",
                          message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            failures.append(f"{name}: {exc}")
        runlog.flush()
    gate.finish()
    if sources is None:  # bronze that no declared source refines would go no further
        for table in lakehouse.tables():
            layer, source = table.split(".", 1)
            if layer == "bronze" and source not in config.sources:
                why = (f"{table} has no declared source {source!r}: its rows go no further; "
                       f"declare sources.{source} with its role and mapping")
                log.error("refine: %s", why)
                runlog.record(source=source, table=table, status="failed", message=why)
                failures.append(why)
        runlog.flush()
    if failures:
        raise RefineError("refine failed for " + "; ".join(failures))
    return results


def mapping_problems(config: SeglakeConfig) -> list[str]:
    """Every declared source's mapping problems, each with the config key to change (no Spark)."""
    return [p for name, source in config.sources.items() for p in mapped(name, source).problems()]


def sampled_problems(spark: SparkSession, config: SeglakeConfig, name: str,
                     rows: int = 1000) -> tuple[int, list[tuple[str, str]]]:
    """(rows sampled, [(error or warning, message)]): a sample of the source's landing files
    mapped and parsed as refine would. Half the values of a column failing to parse, or half
    the rows breaking a rule, is an error of the mapping; fewer is a warning about the data."""
    source, m = config.sources[name], mapped(name, config.sources[name])
    path = landing_path(config, name)
    try:
        sample, rejected, extra = sampled(spark, config, name, rows)
        ctx = Context(config.refine, b"sample-only", config.privacy.phone_region)
        df = prepared(sample, refinement(name, source), ctx).persist()
    except Exception as exc:  # noqa: BLE001 - reported as the source's problem
        log.debug("sampling %s failed", name, exc_info=True)
        if "PATH_NOT_FOUND" in str(exc):
            return 0, [("warning", f"{name}: no files delivered yet under {path}")]
        return 0, [("error", f"{name}: cannot read {path}: {str(exc).splitlines()[0]}")]
    files = [("warning", f"{name}: {Path(f).name} will be rejected: {why}")
             for f, why in sorted(rejected.items())]
    files += [("warning", f"{name}: {Path(f).name}: header fields not declared in sources."
                          f"{name}.columns, not loaded: {', '.join(fields)}")
              for f, fields in sorted(extra.items())]
    try:
        counts = df.select(
            F.count(F.lit(1)).alias("rows"),
            *[F.count(F.col(f"_in.{c.name}")).alias(f"in:{c.name}") for c in m.input.columns],
            *[F.count(F.when(F.col(f"_in.{c.name}").isNotNull() & F.col(c.name).isNull(), 1))
              .alias(f"bad:{c.name}") for c in m.input.columns],
        ).first().asDict()
        broken = df.select(F.explode("_rules").alias("rule")).groupBy("rule").count().collect()
    finally:
        df.unpersist()
    total, found, key = counts["rows"], files, f"sources.{name}"

    def severity(share: float) -> str:
        return "error" if share >= 0.5 else "warning"
    for c in m.input.columns:
        present, bad = counts[f"in:{c.name}"], counts[f"bad:{c.name}"]
        fmt = source.formats.get(c.name, "iso")
        if bad and c.kind not in ("string", "lines", "boolean"):
            found.append((severity(bad / present), f"{name}.{c.name}: {bad} of {present} "
                          f"values do not parse as {c.kind} ({fmt}); see {key}.formats."
                          f"{c.name} or {key}.mapping.{c.name}"))
        if total and not present and c.name in m.required():
            found.append(("error", f"{name}.{c.name}: empty in all {total} sampled rows; see "
                                   f"{key}.mapping.{c.name}"))
    for row in sorted(broken, key=lambda r: (-r["count"], r["rule"])):
        found.append((severity(row["count"] / total), f"{name}: {row['count']} of {total} "
                      f"sampled rows break {row['rule']}"))
    return total, found
