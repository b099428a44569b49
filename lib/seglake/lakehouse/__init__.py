"""Delta tables by name: ``bronze.web_events`` -> ``<root>/bronze/web_events``.

One interface over two backends (see docs/architecture.md): delta-spark when the Delta jars
are on the JVM classpath, delta-rs otherwise. Every write is one Delta commit.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.lakehouse.backend import Backend, Commit, MergeSpec, Txn
from seglake.lakehouse.errors import (
    LakehouseError,
    MergeKeyError,
    SchemaMismatchError,
    TableNotFoundError,
)

__all__ = [
    "Commit",
    "Lakehouse",
    "LakehouseError",
    "MergeKeyError",
    "SchemaMismatchError",
    "TableNotFoundError",
    "Txn",
    "make_backend",
    "parquet_scan",
]

if TYPE_CHECKING:
    from seglake.tables import Registry

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def make_backend(spark: SparkSession, choice: str = "auto") -> Backend:
    """The backend for ``lakehouse.backend``: auto picks delta-spark when its jars are loaded."""
    from seglake.lakehouse.delta_spark import DeltaSparkBackend, delta_spark_available

    if choice not in ("auto", "delta-spark", "delta-rs"):
        raise LakehouseError(f"unknown lakehouse backend {choice!r}")
    if choice == "delta-spark" and not delta_spark_available(spark):
        raise LakehouseError(
            "lakehouse.backend is 'delta-spark' but the Delta classes are not on the JVM "
            "classpath; start Spark with --packages io.delta:delta-spark_2.13:4.0.0 (or the "
            "jars in spark.jars), or set lakehouse.backend to 'auto' or 'delta-rs'"
        )
    if choice == "delta-spark" or (choice == "auto" and delta_spark_available(spark)):
        return DeltaSparkBackend(spark)
    from seglake.lakehouse.delta_rs import DeltaRsBackend

    return DeltaRsBackend(spark)


def parquet_scan(files: list[str]) -> str:
    """DuckDB's read of a table's Parquet ``files`` (Lakehouse.local_files), columns matched by
    name: files written before a schema grew lack its new columns."""
    return f"read_parquet({files!r}, union_by_name = true)"


class Lakehouse:
    """Named Delta tables under one root, read and written through one backend."""

    def __init__(
        self, spark: SparkSession, root: str, backend: Backend, retention_hours: int = 168,
        registry: Registry | None = None,
    ) -> None:
        self.spark = spark
        self.root = root if "://" in root else os.path.abspath(root)
        self.backend = backend
        self.retention_hours = retention_hours
        self.registry = registry  # when set, every write is checked against its declaration

    @classmethod
    def from_config(cls, spark: SparkSession, config: SeglakeConfig,
                    registry: Registry | None = None) -> Lakehouse:
        """The configured lakehouse, its writes checked against the table registry."""
        from seglake.tables import registry as declared

        backend = make_backend(spark, config.lakehouse.backend)
        scheme = urlparse(config.lakehouse.root).scheme
        if backend.name == "delta-rs" and scheme not in ("", "file"):
            raise LakehouseError(
                f"lakehouse.root {config.lakehouse.root} is an object store, which the delta-rs "
                "backend (chosen: no Delta jars on this Spark) cannot commit to: add "
                "--packages io.delta:delta-spark_2.13:4.4.1 with the Delta SQL extension and "
                "catalog (docs/operations.md), or run on a platform with Delta (Databricks)")
        log.info("lakehouse at %s (%s backend)", config.lakehouse.root, backend.name)
        return cls(spark, config.lakehouse.root, backend, config.lakehouse.vacuum_retention_hours,
                   registry if registry is not None else declared(config))

    def _declared(self, name: str, df: DataFrame | pa.Table,
                  partition_by: list[str] | None) -> list[str] | None:
        """Check ``df`` against the declaration of ``name``; the declared partitioning."""
        if self.registry is None:
            return partition_by
        from seglake.tables import TableSchemaError

        table = self.registry.declared(name)
        table.check(self.backend.frame_schema(df))
        if partition_by is not None and list(partition_by) != list(table.partition_by):
            raise TableSchemaError(f"{name}: written partitioned by {list(partition_by)}, "
                                   f"declared {list(table.partition_by)}")
        return list(table.partition_by) or None

    def path(self, name: str) -> str:
        """Where table ``layer.table`` lives."""
        if not _NAME.match(name):
            raise LakehouseError(
                f"table name {name!r} must be '<layer>.<table>' in lower case, e.g. bronze.orders")
        layer, table = name.split(".")
        return f"{self.root.rstrip('/')}/{layer}/{table}"

    def exists(self, name: str) -> bool:
        return self.backend.exists(self.path(name))

    def tables(self) -> list[str]:
        """Every ``layer.table`` under the root that is a Delta table (through Hadoop's file
        system, so object-store roots list too)."""
        hadoop_path = self.spark.sparkContext._jvm.org.apache.hadoop.fs.Path
        root = hadoop_path(self.root)
        fs = root.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(root):
            return []
        names = []
        for layer in fs.listStatus(root):
            if not layer.isDirectory():
                continue
            for table in fs.listStatus(layer.getPath()):
                name = f"{layer.getPath().getName()}.{table.getPath().getName()}"
                if (table.isDirectory() and _NAME.match(name)
                        and fs.exists(hadoop_path(table.getPath(), "_delta_log"))):
                    names.append(name)
        return sorted(names)

    def version(self, name: str) -> int:
        return self.backend.version(self.path(name))

    def columns(self, name: str) -> list[str]:
        """The column names of ``name`` as its Delta schema has them (no Spark read on the
        delta-rs backend)."""
        return self.backend.columns(self.path(name))

    def local_files(self, name: str, where: str | None = None) -> list[str] | None:
        """The Parquet files of ``name``'s current version for a reader in the driver
        (DuckDB), or None when the backend cannot hand them out (see Backend.local_files);
        with ``where``, only those that may hold a row where it holds (file statistics)."""
        return self.backend.local_files(self.path(name), where) if self.exists(name) else None

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table at its latest version, or at ``version`` (time travel)."""
        return self.backend.read(self.path(name), version)

    def append(
        self, name: str, df: DataFrame | pa.Table, partition_by: list[str] | None = None,
        txn: Txn | None = None,
    ) -> Commit:
        """Add rows; new nullable columns extend the schema, incompatible changes fail. Arrow
        rows are written as ``overwrite`` writes them."""
        return self.backend.write(self.path(name), df, mode="append",
                                  partition_by=self._declared(name, df, partition_by), txn=txn)

    def overwrite(
        self, name: str, df: DataFrame | pa.Table, partition_by: list[str] | None = None,
        replace_where: str | None = None, overwrite_schema: bool = False,
        txn: Txn | None = None,
    ) -> Commit:
        """Replace the table, or only the rows matching ``replace_where`` (all rows of ``df``
        must match it). Arrow rows (made in the driver) are written without a Spark job where
        the backend can (delta-rs, an unpartitioned table)."""
        return self.backend.write(self.path(name), df, mode="overwrite",
                                  partition_by=self._declared(name, df, partition_by),
                                  replace_where=replace_where,
                                  overwrite_schema=overwrite_schema, txn=txn)

    def overwrite_as_of(self, name: str, df: DataFrame, as_of: Any,
                        txn: Txn | None = None) -> Commit:
        """Replace the rows of one ``as_of`` of a table partitioned by it (creating the table
        on the first write): how every point-in-time stage writes, so a re-run of a date
        replaces that date only."""
        if self.registry is not None and \
                list(self.registry.declared(name).partition_by) != ["as_of"]:
            raise SchemaMismatchError(f"{name} is not declared partitioned by as_of")
        return self.overwrite(name, df, replace_where=f"as_of = DATE'{as_of.isoformat()}'",
                              txn=txn)

    def merge(
        self, name: str, source: DataFrame, on: list[str] | str, *,
        when_matched_update: bool | str = True, when_matched_delete: str | None = None,
        when_not_matched_insert: bool | str = True, txn: Txn | None = None,
    ) -> Commit:
        """Upsert ``source`` on key columns. Conditions are SQL over aliases ``s`` and ``t``;
        delete wins over update when both hold. Only files holding matched keys are rewritten."""
        keys = (on,) if isinstance(on, str) else tuple(on)
        self._declared(name, source, None)
        spec = MergeSpec(keys, when_matched_update, when_matched_delete, when_not_matched_insert)
        return self.backend.merge(self.path(name), source, spec, txn)

    def sync(self, name: str, df: DataFrame, stamps: tuple[str, ...] = (),
             keys: list[str] | None = None,
             within: tuple[DataFrame, list[str]] | None = None) -> tuple[int, int]:
        """Make the table hold ``df`` where rows nothing changed (columns ``stamps`` aside) keep
        their stamps, and nothing is written when no row changed: downstream reads a row's
        ``run_id`` as the run that last changed it. One commit (a MERGE of the changed rows
        cost 5-20 times the rewrite of these tables on the small world). ``keys``: the
        declared key by default (a null in a key equals a null). ``within`` (scope, columns):
        ``df`` replaces only the rows whose ``columns`` match a row of ``scope``, the others
        are kept unread by the comparison (an incremental run's changes to a large table).
        Returns (rows added or changed, rows gone)."""
        if keys is None:
            keys = list(self.registry.declared(name).key) if self.registry is not None else []
        if not keys:
            raise ValueError(f"{name}: sync needs key columns")
        if not self.exists(name):
            self.append(name, df)
            return df.count(), 0
        df = df.localCheckpoint()  # a short plan: the comparison re-plans it
        table = self.read(name)
        old = table if within is None else table.join(within[0], within[1], "left_semi")
        compared = [c for c in df.columns if c not in stamps]
        new, old = df.withColumn("_in", F.lit(True)).alias("_n"), \
            old.withColumn("_in", F.lit(True)).alias("_o")

        def values(side: str) -> Column:
            return F.struct(*[F.col(f"{side}.`{c}`") for c in compared])

        state = F.when(F.col("_o._in").isNull(), "added").when(F.col("_n._in").isNull(), "gone") \
            .when(values("_n").eqNullSafe(values("_o")), "same").otherwise("changed")
        # one pass: each row's fate, and the row to keep (the old one, stamps and all, if same)
        fates = new.join(old, [F.col(f"_n.`{k}`").eqNullSafe(F.col(f"_o.`{k}`")) for k in keys],
                         "full_outer").select(state.alias("_state"), *[
                             F.when(state == "same", F.col(f"_o.`{c}`"))
                             .otherwise(F.col(f"_n.`{c}`")).alias(c) if c in stamps
                             else F.col(f"_n.`{c}`") for c in df.columns]).persist()
        counts = {r["_state"]: r["count"] for r in fates.groupBy("_state").count().collect()}
        n_changed, n_gone = counts.get("added", 0) + counts.get("changed", 0), \
            counts.get("gone", 0)
        log.debug("%s: sync found %d changed and %d gone rows", name, n_changed, n_gone)
        if n_changed or n_gone:
            rows = fates.where(F.col("_state") != "gone").drop("_state")
            if within is not None:  # the rows outside the scope, as they are
                rows = table.join(within[0], within[1], "left_anti").select(*df.columns) \
                    .unionByName(rows)
            self.overwrite(name, rows)
        fates.unpersist()
        return n_changed, n_gone

    def delete(self, name: str, condition: str, txn: Txn | None = None) -> Commit:
        """Delete the rows where ``condition`` is true (files without such rows are untouched)."""
        return self.backend.delete(self.path(name), condition, txn)

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first: version, timestamp, operation, parameters."""
        return self.backend.history(self.path(name), limit)

    def expire_history(self, name: str) -> None:
        """Drop the log of versions before the latest (their statistics name old rows)."""
        return self.backend.expire_history(self.path(name))

    def vacuum(self, name: str, retention_hours: int | None = None) -> list[str]:
        """Delete files no version younger than the retention needs (erasure needs this)."""
        hours = self.retention_hours if retention_hours is None else retention_hours
        return self.backend.vacuum(self.path(name), hours)
