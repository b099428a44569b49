"""Delta through delta-spark, for sessions that have the Delta jars (clusters, Databricks)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from seglake.lakehouse.backend import Backend, Commit, MergeSpec, Txn
from seglake.lakehouse.errors import TableNotFoundError
from seglake.lakehouse.schema import check_partition_columns, conform, evolved_schema

log = logging.getLogger(__name__)

_TXN_CONF = ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion")


def delta_spark_available(spark: SparkSession) -> bool:
    """True when the Delta classes are on the JVM classpath of this session."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:  # Spark Connect: the server decides; Databricks ships Delta
        return True
    try:
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
    except Exception:
        return False
    return True


class DeltaSparkBackend(Backend):
    name = "delta-spark"

    def __init__(self, spark: SparkSession) -> None:
        from delta.tables import DeltaTable

        self.spark = spark
        self._delta = DeltaTable

    def _table(self, path: str) -> Any:
        if not self._delta.isDeltaTable(self.spark, path):
            raise TableNotFoundError(f"no Delta table at {path}")
        return self._delta.forPath(self.spark, path)

    def _last_commit(self, path: str, operation: str, skipped: bool = False) -> Commit:
        row = self._table(path).history(1).first()
        metrics = row["operationMetrics"] or {}

        def metric(*names: str) -> int | None:
            values = [int(metrics[n]) for n in names if n in metrics]
            return sum(values) if values else None

        return Commit(
            table=path,
            operation=operation,
            version=row["version"],
            files_added=metric("numFiles", "numAddedFiles") or 0,
            files_removed=metric("numRemovedFiles") or 0,
            rows_added=metric("numOutputRows"),
            rows_removed=metric("numDeletedRows", "numTargetRowsDeleted"),
            skipped=skipped,
        )

    def exists(self, path: str) -> bool:
        return bool(self._delta.isDeltaTable(self.spark, path))

    def version(self, path: str) -> int:
        return int(self._table(path).history(1).first()["version"])

    def read(self, path: str, version: int | None = None) -> DataFrame:
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(path)

    def write(
        self,
        path: str,
        df: DataFrame | pa.Table,
        *,
        mode: Literal["append", "overwrite"],
        partition_by: list[str] | None = None,
        replace_where: str | None = None,
        overwrite_schema: bool = False,
        txn: Txn | None = None,
    ) -> Commit:
        df = self.frame(df)
        before = self.version(path) if self.exists(path) else None
        if before is None:
            check_partition_columns(df.schema, list(partition_by or []), path)
        elif not (overwrite_schema and mode == "overwrite"):
            final = evolved_schema(self.read(path).schema, df.schema, path)
            df = conform(df, final, path)
        writer = df.write.format("delta").mode(mode).option("mergeSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_where:
            writer = writer.option("replaceWhere", replace_where)
        if overwrite_schema:
            writer = writer.option("overwriteSchema", "true")
        if txn:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        writer.save(path)
        operation = "APPEND" if mode == "append" else "OVERWRITE"
        after = self.version(path)
        if after == before:
            return Commit(path, operation, after, skipped=True)
        return self._last_commit(path, operation)

    def _with_txn(self, txn: Txn | None, action: Any) -> None:
        if txn is None:
            action()
            return
        self.spark.conf.set(_TXN_CONF[0], txn.app_id)
        self.spark.conf.set(_TXN_CONF[1], str(txn.version))
        try:
            action()
        finally:
            for key in _TXN_CONF:
                self.spark.conf.unset(key)

    def merge(
        self, path: str, source: DataFrame, spec: MergeSpec, txn: Txn | None = None
    ) -> Commit:
        if not self.exists(path):
            return self.write(path, source, mode="append", txn=txn)
        before = self.version(path)
        columns = [c for c in source.columns if c in self.read(path).columns]
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec.on)
        builder = self._table(path).alias("t").merge(source.alias("s"), on)
        if spec.matched_delete:
            builder = builder.whenMatchedDelete(condition=spec.matched_delete)
        if spec.matched_update:
            cond = spec.matched_update if isinstance(spec.matched_update, str) else None
            builder = builder.whenMatchedUpdate(
                condition=cond, set={f"`{c}`": f"s.`{c}`" for c in columns})
        if spec.not_matched_insert:
            cond = spec.not_matched_insert if isinstance(spec.not_matched_insert, str) else None
            builder = builder.whenNotMatchedInsert(
                condition=cond, values={f"`{c}`": f"s.`{c}`" for c in columns})
        self._with_txn(txn, builder.execute)
        after = self.version(path)
        return self._last_commit(path, "MERGE", skipped=after == before)

    def delete(self, path: str, condition: str, txn: Txn | None = None) -> Commit:
        before = self.version(path)
        self._with_txn(txn, lambda: self._table(path).delete(condition))
        after = self.version(path)
        return self._last_commit(path, "DELETE", skipped=after == before)

    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self._table(path).history(limit).collect() if limit else \
            self._table(path).history().collect()
        return [row.asDict(recursive=True) for row in rows]

    def vacuum(self, path: str, retention_hours: int) -> list[str]:
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        self._table(path).vacuum(retention_hours)
        return []
