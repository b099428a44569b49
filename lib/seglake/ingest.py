"""Landing -> bronze: every landing record exactly once, nothing dropped.

Each source is a Structured Streaming read (any Spark format from config) run with
``trigger(availableNow=True)`` and a checkpoint per source: new files since the last run form
the next micro-batch. Its ``foreachBatch`` writes bronze through the lakehouse with the batch id
as an idempotent transaction, so a run killed half-way replays the batch without duplicating it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from pyspark.errors import AnalysisException
from pyspark.errors.exceptions.captured import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.declarations import INGEST_FILES, declared
from seglake.delivery import (
    NUL,
    delivered,
    files_read,
    header_check,
    reader_options,
    record_text,
)
from seglake.lakehouse import Lakehouse, Txn
from seglake.runlog import RunLog, error_summary
from seglake.tables import CORRUPT, bronze_table, declared_schema

log = logging.getLogger(__name__)

UNDECODABLE = "\ufffd"  # what a wrong encoding or binary junk decodes to


class IngestError(RuntimeError):
    """A source could not be ingested (bad declaration, unreachable storage, ...)."""


@dataclass
class SourceResult:
    source: str
    batches: int = 0
    rows: int = 0
    rows_loaded: int = 0
    files_loaded: int = 0
    files_rejected: list[tuple[str, str]] = field(default_factory=list)


def source_stream(spark: SparkSession, config: SeglakeConfig, name: str) -> DataFrame:
    """The source as a stream with ``_source_file`` (file formats; else the format's name)."""
    source = config.sources[name]
    options = reader_options(source)
    if config.ingest.max_files_per_batch:
        options.setdefault("maxFilesPerTrigger", str(config.ingest.max_files_per_batch))
    reader = spark.readStream.format(source.format).options(**options)
    schema = declared_schema(source)
    if schema.fields:
        reader = reader.schema(schema)
    if source.path:
        stream = reader.load(f"{config.landing.root.rstrip('/')}/{source.path}")
    else:
        stream = reader.load()
    try:
        return stream.withColumn("_source_file", F.col("_metadata.file_path"))
    except AnalysisException:  # not a file source (kafka, ...): no per-file metadata
        return stream.withColumn("_source_file", F.lit(source.format))


def _hadoop_text(spark: SparkSession, path: str) -> str | None:
    """A small text file through Hadoop (local, HDFS, object stores); None when absent."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(conf)
    if not fs.exists(target):
        return None
    stream = fs.open(target)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def _local(path: str) -> str:
    """A file URI and its path spelt alike (file:///a, file:/a, /a)."""
    return re.sub(r"^file:/+", "/", path)


def batch_files(spark: SparkSession, checkpoint: str, batch_id: int) -> list[str]:
    """The files of one micro-batch, from the file source's log in the checkpoint (a batch that
    fails to read cannot tell them itself)."""
    log_dir = f"{checkpoint}/sources/0/{batch_id}"
    text = _hadoop_text(spark, log_dir) or _hadoop_text(spark, f"{log_dir}.compact") or ""
    entries = [json.loads(line) for line in text.splitlines()[1:] if line.startswith("{")]
    return sorted(e["path"] for e in entries if e.get("batchId") == batch_id)


def unreadable_files(spark: SparkSession, config: SeglakeConfig, name: str, files: list[str]
                     ) -> dict[str, str]:
    """The files that cannot be read to their end (a truncated archive, an I/O error), each
    with the reader's error; tried one by one, so only after a batch failed to read."""
    bad = {}
    for file in files:
        try:
            files_read(spark, config.sources[name], [file]).count()
        except Exception as exc:  # noqa: BLE001 - the file's verdict
            bad[file] = f"cannot be read: {error_summary(exc)}"
    return bad


def file_verdicts(batch: DataFrame, max_corrupt_share: float,
                  header_reasons: dict[str, str] | None = None
                  ) -> list[tuple[str, int, int, str]]:
    """(file, records, corrupt records, rejection reason or '') for each file of a batch.

    A file is rejected whole when it holds undecodable bytes (wrong encoding, binary junk),
    when ``header_reasons`` names it (a CSV header short of a declared column), or when more
    than ``max_corrupt_share`` of its records do not parse (not this format at all).
    """
    text = record_text(batch, [c for c in batch.columns if c != "_source_file"])
    undecodable = text.contains(UNDECODABLE) if text is not None else F.lit(False)
    if CORRUPT in batch.columns:  # a NUL in a line that does not even parse: binary content
        undecodable = undecodable | F.coalesce(F.col(CORRUPT).contains(NUL), F.lit(False))
    corrupt = F.col(CORRUPT).isNotNull() if CORRUPT in batch.columns else F.lit(False)
    stats = batch.groupBy("_source_file").agg(
        F.count(F.lit(1)).alias("records"),
        F.sum(corrupt.cast("long")).alias("corrupt"),
        F.sum(undecodable.cast("long")).alias("undecodable"),
    ).collect()
    verdicts = []
    for row in sorted(stats, key=lambda r: r["_source_file"] or ""):
        reason = ""
        if row["undecodable"]:
            reason = (f"{row['undecodable']} of {row['records']} records hold bytes that do not "
                      "decode (wrong encoding or binary content)")
        elif (header_reasons or {}).get(row["_source_file"]):
            reason = header_reasons[row["_source_file"]]
        elif row["corrupt"] > max_corrupt_share * row["records"]:
            reason = (f"{row['corrupt']} of {row['records']} records do not parse "
                      "(not this source's format)")
        verdicts.append((row["_source_file"], row["records"], row["corrupt"], reason))
    return verdicts


def ingest_source(
    spark: SparkSession, config: SeglakeConfig, lakehouse: Lakehouse, name: str, runlog: RunLog
) -> SourceResult:
    """Run the source's stream until the files present now are all in bronze."""
    if name not in config.sources:
        raise IngestError(f"unknown source {name!r}; declared: {', '.join(config.sources)}")
    table = bronze_table(name)
    source = config.sources[name]
    result = SourceResult(name)
    app_id = f"seglake-ingest:{name}"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        files = batch_files(spark, checkpoint, batch_id) if source.path else []
        try:
            write_files(batch, batch_id, files, {})
        except Exception:
            bad = unreadable_files(spark, config, name, files)
            if not bad:
                raise
            good = [f for f in files if f not in bad]
            # the batch without the unreadable files; those are recorded as rejected
            write_files(files_read(spark, source, good) if good else
                        batch.limit(0), batch_id, files, bad)

    def write_files(batch: DataFrame, batch_id: int, files: list[str],
                    unreadable: dict[str, str]) -> None:
        lineage = {"_ingested_at": F.current_timestamp(),
                   "_batch_id": F.lit(batch_id).cast("long")}
        batch, short, extra = delivered(spark, source, name, batch)
        for file, fields in extra.items():
            log.warning("%s: %s: header fields not declared in sources.%s.columns, not "
                        "loaded: %s", name, file, name, ", ".join(fields))
        batch = batch.withColumns(lineage).persist()
        try:
            verdicts = file_verdicts(batch, config.ingest.max_corrupt_share, short)
            verdicts += [(file, 0, 0, reason) for file, reason in sorted(unreadable.items())]
            seen = {_local(v[0]) for v in verdicts}
            empty = [file for file in files if _local(file) not in seen]  # no records
            short_empty, _, _ = header_check(spark, source, name, empty)  # header-only CSV
            verdicts += [(file, 0, 0, short_empty.get(file, "")) for file in empty]
            rejections = [(file, reason) for file, _, _, reason in verdicts if reason]
            rejected = [file for file, _ in rejections]
            loaded = batch.where(~F.col("_source_file").isin(rejected)) if rejected else batch
            commit = lakehouse.append(table, loaded, txn=Txn(app_id, batch_id))
            files = spark.createDataFrame(
                [(name, file, batch_id, records, corrupt, "rejected" if reason else "loaded",
                  reason or None, runlog.run_id)
                 for file, records, corrupt, reason in verdicts], declared(INGEST_FILES).ddl)
            lakehouse.append(INGEST_FILES, files, txn=Txn(app_id, batch_id))
        finally:
            batch.unpersist()
        rows = sum(v[1] for v in verdicts)
        rows_loaded = sum(v[1] for v in verdicts if not v[3])
        for file, reason in rejections:
            log.error("%s: rejected %s: %s", name, file, reason)
        result.batches += 1
        result.rows += rows
        result.rows_loaded += rows_loaded
        result.files_loaded += len(verdicts) - len(rejections)
        result.files_rejected += rejections
        runlog.record(
            source=name, table=table, batch_id=batch_id, rows_in=rows, rows_out=rows_loaded,
            rejected_files=len(rejections),
            status="rejected_files" if rejections else "ok",
            message="; ".join(f"{f}: {r}" for f, r in rejections)
            + (" (batch already in bronze: replayed)" if commit.skipped else ""))

    checkpoint = f"{_checkpoint_root(config, lakehouse)}/{name}"
    if _hadoop_text(spark, f"{checkpoint}/metadata") is None and lakehouse.exists(table) \
            and lakehouse.read(table).limit(1).count():
        raise IngestError(
            f"ingest of source {name!r}: its stream checkpoint {checkpoint} is missing, but "
            f"{table} already holds rows: a new checkpoint counts its batches from 0 again, "
            "which bronze's exactly-once writes and refine take for batches already loaded "
            "(new files would be skipped). Restore the checkpoint (ingest.checkpoint_root says "
            f"where it is looked for), or drop {table} to load every file again")
    try:
        query = (source_stream(spark, config, name).writeStream
                 .foreachBatch(write_batch)
                 .option("checkpointLocation", checkpoint)
                 .trigger(availableNow=True)
                 .queryName(f"seglake_ingest_{name}")
                 .start())
        query.awaitTermination()
    except (StreamingQueryException, AnalysisException) as exc:
        if "Wrong basePath" in str(exc):
            raise IngestError(
                f"ingest of source {name!r}: its stream checkpoint {checkpoint} names files "
                f"under another landing root than {config.landing.root} (Spark: Wrong "
                "basePath): move the landing files back, or see docs/troubleshooting.md, "
                "\"A landing root moved\"") from exc
        raise IngestError(f"ingest of source {name!r} failed: {_first_line(exc)}") from exc
    return result


def _checkpoint_root(config: SeglakeConfig, lakehouse: Lakehouse) -> str:
    return (config.ingest.checkpoint_root or f"{lakehouse.root}/_checkpoints/ingest").rstrip("/")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_ingest(
    spark: SparkSession, config: SeglakeConfig, sources: list[str] | None = None,
    runlog: RunLog | None = None,
) -> list[SourceResult]:
    """Ingest the named sources (default: all declared); the run log is written even when one
    fails, and the failure is raised after the others ran."""
    lakehouse = Lakehouse.from_config(spark, config)
    runlog = runlog or RunLog(lakehouse, "ingest")
    names = sources or list(config.sources)
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise IngestError(f"unknown source(s) {unknown}; declared: {', '.join(config.sources)}")
    results, failures = [], []
    for name in names:
        try:
            results.append(ingest_source(spark, config, lakehouse, name, runlog))
        except IngestError as exc:
            log.error("%s", exc)
            runlog.record(source=name, table=bronze_table(name), status="failed",
                          message=str(exc))
            failures.append(str(exc))
        runlog.flush()
    if failures:
        raise IngestError("; ".join(failures))
    return results
