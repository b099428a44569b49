"""Delta without the Delta jars: Spark writes Parquet, the driver commits it with ``deltalake``.

A write goes in three steps. Spark executors write the data files into a hidden staging folder of
the table (``_staging/<id>``); the driver moves them into the table's folder, reads their Parquet
footers (metadata only) for the per-file statistics, and commits add/remove actions in one Delta
transaction. Until that commit no reader sees the files; if Spark fails, nothing is committed and
the staging folder is deleted. MERGE and DELETE find the files that hold affected rows, rewrite
only those with Spark, and commit "remove old files + add rewritten ones" as one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake.lakehouse.backend import Backend, Commit, MergeSpec, Txn
from seglake.lakehouse.errors import (
    LakehouseError,
    MergeKeyError,
    SchemaMismatchError,
    TableNotFoundError,
)
from seglake.lakehouse.schema import (
    check_partition_columns,
    conform,
    conform_arrow,
    evolved_schema,
    loose_type,
)
from seglake.lakehouse.stats import stats_json

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
ROW_GROUP_ROWS = 122_880  # of a file written from the driver
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
FILE_COL = "__seglake_file"
_KEY_RANGE_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.StringType, T.DateType)


@dataclass(frozen=True)
class DataFile:
    """One live file of a snapshot: its log path, local path and size."""

    rel: str
    local: str
    size: int
    rows: int | None


def _local(path: str) -> str:
    """A filesystem path for a table path or URI Spark and pyarrow both understand."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(unquote(parsed.path) if parsed.scheme else path)
    raise LakehouseError(
        f"{path}: the delta-rs backend works on filesystem paths; for object stores run with "
        "the Delta jars (lakehouse.backend: delta-spark)"
    )


# the last snapshot loaded of each table (path -> table, its last commit file's stamp): a
# stage opens its tables dozens of times, and loading the log costs 5-6 ms where catching up
# with it costs under 1 ms
_SNAPSHOTS: dict[str, tuple[DeltaTable, tuple[int, int, int] | None]] = {}


def _commit_file(root: str, version: int) -> str:
    return os.path.join(root, "_delta_log", f"{version:020d}.json")


def _commit_stamp(root: str, version: int) -> tuple[int, int, int] | None:
    """Inode, size and mtime of a commit's file: another file under the same name means the
    table was dropped and created again (None: no such file)."""
    try:
        st = os.stat(_commit_file(root, version))
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _latest_known(root: str) -> DeltaTable | None:
    """The cached snapshot of the table at ``root`` brought to its latest commit; None when
    there is none or the table is no longer the one cached (load it again)."""
    cached = _SNAPSHOTS.get(root)
    if cached is None:
        return None
    table, stamp = cached
    version = table.version()
    if stamp is None or _commit_stamp(root, version) != stamp:
        return None
    if os.path.exists(_commit_file(root, version + 1)):
        try:
            table.update_incremental()
        except Exception:  # the log moved under us: load it again
            return None
        _SNAPSHOTS[root] = (table, _commit_stamp(root, table.version()))
    return table


def _spark_file_to_local(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def _partition_values(rel: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for segment in rel.split("/")[:-1]:
        name, _, raw = segment.partition("=")
        values[unquote(name)] = None if raw == NULL_PARTITION else unquote(raw)
    return values


def _files_holding(rows: DataFrame, candidates: list[DataFile]) -> list[DataFile]:
    """The candidates that hold at least one of ``rows`` (which carry ``FILE_COL``)."""
    hits = rows.select(FILE_COL).distinct().collect()
    wanted = {_spark_file_to_local(r[0]) for r in hits}
    return [f for f in candidates if f.local in wanted]


def spark_schema(table: DeltaTable) -> T.StructType:
    return T.StructType.fromJson(json.loads(table.schema().to_json()))


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"'{value.isoformat()}'" if hasattr(value, "isoformat") else str(value)


class DeltaRsBackend(Backend):
    name = "delta-rs"

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")

    # -- snapshots ---------------------------------------------------------------------------
    def _open(self, path: str, version: int | None = None) -> DeltaTable | None:
        local = _local(path)
        if version is None and (table := _latest_known(local)) is not None:
            return table
        try:
            table = DeltaTable(local, version=version)
        except DeltaTableNotFound:
            _SNAPSHOTS.pop(local, None)
            return None
        if version is None:
            _SNAPSHOTS[local] = (table, _commit_stamp(local, table.version()))
        return table

    def _require(self, path: str, version: int | None = None) -> DeltaTable:
        table = self._open(path, version)
        if table is None:
            raise TableNotFoundError(f"no Delta table at {path}")
        return table

    def _files(self, table: DeltaTable) -> list[DataFile]:
        root = _local(table.table_uri)
        try:
            actions = pa.table(table.get_add_actions(flatten=True))
        except Exception:  # a table without files has no add actions to list
            return []
        paths = actions.column("path").to_pylist()
        sizes = actions.column("size_bytes").to_pylist()
        rows = actions.column("num_records").to_pylist()
        return [
            DataFile(unquote(p), os.path.join(root, unquote(p)), s, r)
            for p, s, r in zip(paths, sizes, rows, strict=True)
        ]

    def _prune(self, table: DeltaTable, files: list[DataFile], predicate: str) -> list[DataFile]:
        """Files whose statistics or partition values may satisfy ``predicate`` (all if unsure)."""
        try:
            keep = {_local(u) for u in table.file_uris(file_pruning_predicate=predicate)}
        except Exception as exc:  # delta-rs cannot parse it: scan every file
            log.debug("no file pruning for %r: %s", predicate, exc)
            return files
        return [f for f in files if f.local in keep]

    def exists(self, path: str) -> bool:
        # a look at the log, not a load of it (0.1 ms against 2 ms, dozens of times a stage)
        return DeltaTable.is_deltatable(_local(path))

    def version(self, path: str) -> int:
        return self._require(path).version()

    # -- reads -------------------------------------------------------------------------------
    def _scan(
        self, table: DeltaTable, files: list[DataFile], with_file: bool = False
    ) -> DataFrame:
        schema = spark_schema(table)
        names = [F.col(f"`{n}`") for n in schema.names]
        if not files:
            empty = self.spark.createDataFrame([], schema)
            return empty.withColumn(FILE_COL, F.lit(None).cast("string")) if with_file else empty
        reader = self.spark.read.schema(schema)
        if table.metadata().partition_columns:
            reader = reader.option("basePath", _local(table.table_uri))
        df = reader.parquet(*[f.local for f in files])
        if with_file:
            names.append(F.col("_metadata.file_path").alias(FILE_COL))
        return df.select(*names)

    def read(self, path: str, version: int | None = None) -> DataFrame:
        table = self._require(path, version)
        return self._scan(table, self._files(table))

    def columns(self, path: str) -> list[str]:
        return spark_schema(self._require(path)).names

    def local_files(self, path: str, where: str | None = None) -> list[str] | None:
        # read() scans the same files, whole: this backend writes no deletion vectors
        table = self._require(path)
        files = self._files(table)
        return [f.local for f in (self._prune(table, files, where) if where else files)]

    # -- writing files -----------------------------------------------------------------------
    def _write_files(
        self, path: str, df: DataFrame, partition_by: list[str], schema: T.StructType
    ) -> list[AddAction]:
        root = _local(path)
        staging = os.path.join(root, STAGING_DIR, uuid.uuid4().hex)
        fs = pafs.LocalFileSystem()
        try:
            writer = df.write.mode("errorifexists")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.parquet(staging)
            written = [
                info.path
                for info in fs.get_file_info(pafs.FileSelector(staging, recursive=True))
                if info.type == pafs.FileType.File
                and info.path.endswith(".parquet")
                and not os.path.basename(info.path).startswith((".", "_"))
            ]
            # Spark writes at least one file unless the rows are partitioned and none exist: no
            # file here means the executors wrote to disks this driver does not see
            if not written and (not partition_by or not df.isEmpty()):
                raise LakehouseError(
                    f"{path}: the executors' Parquet files are not visible to the driver, which "
                    "commits them with the delta-rs backend: put lakehouse.root on a file "
                    "system that the driver and every executor share (NFS, a mounted volume), "
                    "or run with the Delta jars (--packages io.delta:delta-spark_2.13:4.4.1, "
                    "lakehouse.backend: delta-spark)")
            with ThreadPoolExecutor(max_workers=8) as pool:
                return [a for a in pool.map(lambda p: self._publish(root, staging, p, schema),
                                            written) if a is not None]
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _write_arrow(self, path: str, rows: pa.Table, schema: T.StructType) -> list[AddAction]:
        """``_write_files`` for rows in the driver (an unpartitioned table): one Parquet file
        written by pyarrow, staged and moved in."""
        root = _local(path)
        staging = os.path.join(root, STAGING_DIR, uuid.uuid4().hex)
        try:
            if not rows.num_rows:
                return []
            os.makedirs(staging)
            file = os.path.join(staging, f"part-00000-{uuid.uuid4()}.snappy.parquet")
            # row groups of DuckDB's size: a reader in the driver scans them on every core
            # (one group of the 907,058-row identity map was read by one thread)
            pq.write_table(rows, file, compression="snappy", row_group_size=ROW_GROUP_ROWS)
            return [a for a in [self._publish(root, staging, file, schema)] if a is not None]
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(
        self, root: str, staging: str, file: str, schema: T.StructType
    ) -> AddAction | None:
        """Move one staged file into the table folder; its add action, or None when empty."""
        metadata = pq.read_metadata(file)
        if metadata.num_rows == 0:
            return None
        rel = os.path.relpath(file, staging).replace(os.sep, "/")
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(file, target)
        stat = os.stat(target)
        return AddAction(
            path=rel,
            size=stat.st_size,
            partition_values=_partition_values(rel),
            modification_time=int(stat.st_mtime * 1000),
            data_change=True,
            stats=stats_json(metadata, schema),
        )

    def _commit(
        self,
        path: str,
        table: DeltaTable | None,
        operation: str,
        adds: list[AddAction],
        removes: list[DataFile],
        schema: T.StructType,
        partition_by: list[str],
        txn: Txn | None,
        mode: Literal["append", "overwrite"] = "append",
    ) -> Commit:
        properties = CommitProperties(
            custom_metadata={"seglake.operation": operation},
            app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None,
        )
        delta_schema = DeltaSchema.from_json(schema.json())
        now = int(time.time() * 1000)
        if table is None:
            create_table_with_add_actions(
                _local(path),
                delta_schema,
                adds,
                mode="error",
                partition_by=partition_by or None,
                commit_properties=properties,
            )
        else:
            actions: list[AddAction | RemoveAction] = list(adds)
            if mode == "append":
                actions += [RemoveAction(f.rel, True, now, f.size) for f in removes]
            table.create_write_transaction(
                actions,
                mode,
                delta_schema,
                partition_by=partition_by or None,
                commit_properties=properties,
            )
        new_version = self._require(path).version()
        return Commit(
            table=path,
            operation=operation,
            version=new_version,
            files_added=len(adds),
            files_removed=len(removes),
            rows_added=sum(json.loads(a.stats)["numRecords"] for a in adds),
            rows_removed=sum(f.rows or 0 for f in removes),
        )

    @staticmethod
    def _already_applied(table: DeltaTable | None, txn: Txn | None) -> bool:
        if table is None or txn is None:
            return False
        applied = table.transaction_version(txn.app_id)
        return applied is not None and applied >= txn.version

    def _skipped(self, path: str, table: DeltaTable, operation: str, txn: Txn) -> Commit:
        log.info("%s: %s skipped, txn %s/%s already applied", path, operation, txn.app_id,
                 txn.version)
        return Commit(path, operation, table.version(), skipped=True)

    def _evolve(self, table: DeltaTable, current: T.StructType, final: T.StructType) -> None:
        """Commit new nullable columns (metadata only) ahead of the data commit that uses them."""
        added = [f for f in final.fields if f.name not in current.names]
        if not added:
            return
        fields = DeltaSchema.from_json(T.StructType(added).json()).fields
        table.alter.add_columns(fields)
        log.info("added columns %s to %s", [f.name for f in added], table.table_uri)

    # -- operations --------------------------------------------------------------------------
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
        table = self._open(path)
        operation = "APPEND" if mode == "append" else (
            "REPLACE WHERE" if replace_where else "OVERWRITE")
        if self._already_applied(table, txn):
            return self._skipped(path, table, operation, txn)
        if replace_where and mode != "overwrite":
            raise LakehouseError(f"{path}: replace_where needs mode='overwrite'")
        rows = df if isinstance(df, pa.Table) else None  # written by the driver: no Spark job
        if rows is not None and (replace_where or partition_by or (
                table is not None and table.metadata().partition_columns)):
            df, rows = self.frame(rows), None
        schema = self.frame_schema(df)
        if table is None:
            parts = list(partition_by or [])
            check_partition_columns(schema, parts, path)
            current, final = None, schema
        else:
            parts = list(table.metadata().partition_columns)
            if partition_by is not None and list(partition_by) != parts:
                raise SchemaMismatchError(
                    f"{path}: table is partitioned by {parts}, the write asks for "
                    f"{list(partition_by)}; partitioning cannot change"
                )
            current = spark_schema(table)
            if overwrite_schema and mode == "overwrite" and not replace_where:
                check_partition_columns(schema, parts, path)
                final = schema
            else:
                final = evolved_schema(current, schema, path)
        if rows is not None:
            data = None
            adds = self._write_arrow(path, conform_arrow(rows, final, path), final)
        else:
            data = conform(df, final, path)
        removes: list[DataFile] = []
        if table is not None and mode == "overwrite":
            if replace_where:
                data = data.where(
                    F.when(F.expr(replace_where), F.lit(True)).otherwise(
                        F.raise_error(F.lit(f"{path}: a written row does not match "
                                            f"replace_where '{replace_where}'"))))
                removes = self._files_with_rows(table, replace_where)
                if removes:
                    kept = self._scan(table, removes).where(
                        ~F.coalesce(F.expr(replace_where), F.lit(False)))
                    data = data.unionByName(conform(kept, final, path))
            else:
                removes = self._files(table)
        if data is not None:
            adds = self._write_files(path, data, parts, final)
        full_overwrite = table is not None and mode == "overwrite" and not replace_where
        if table is not None and current is not None and not full_overwrite:
            self._evolve(table, current, final)
            table = self._require(path)
        commit = self._commit(path, table, operation, adds, removes, final, parts, txn,
                              mode="overwrite" if full_overwrite else "append")
        log.info("%s: %s committed version %s (+%s rows in %s files, -%s files)", path,
                 operation, commit.version, commit.rows_added, commit.files_added,
                 commit.files_removed)
        return commit

    def _files_with_rows(self, table: DeltaTable, condition: str) -> list[DataFile]:
        """Live files holding at least one row where ``condition`` is true."""
        candidates = self._prune(table, self._files(table), condition)
        if not candidates:
            return []
        rows = self._scan(table, candidates, with_file=True).where(
            F.coalesce(F.expr(condition), F.lit(False)))
        return _files_holding(rows, candidates)

    def delete(self, path: str, condition: str, txn: Txn | None = None) -> Commit:
        table = self._require(path)
        if self._already_applied(table, txn):
            return self._skipped(path, table, "DELETE", txn)
        schema = spark_schema(table)
        parts = list(table.metadata().partition_columns)
        removes = self._files_with_rows(table, condition)
        adds: list[AddAction] = []
        if removes:
            kept = self._scan(table, removes).where(~F.coalesce(F.expr(condition), F.lit(False)))
            adds = self._write_files(path, kept, parts, schema)
        commit = self._commit(path, table, "DELETE", adds, removes, schema, parts, txn)
        log.info("%s: DELETE committed version %s (%s rows removed)", path, commit.version,
                 (commit.rows_removed or 0) - (commit.rows_added or 0))
        return commit

    def merge(
        self, path: str, source: DataFrame, spec: MergeSpec, txn: Txn | None = None
    ) -> Commit:
        table = self._open(path)
        if self._already_applied(table, txn):
            return self._skipped(path, table, "MERGE", txn)
        keys = list(spec.on)
        missing = [k for k in keys if k not in source.columns]
        if missing:
            raise SchemaMismatchError(f"{path}: merge keys {missing} are not in the source")
        source = source.persist(StorageLevel.MEMORY_AND_DISK)  # read by four jobs below
        try:
            return self._merge(path, table, source, spec, keys, txn)
        finally:
            source.unpersist()

    def _merge(
        self, path: str, table: DeltaTable | None, source: DataFrame, spec: MergeSpec,
        keys: list[str], txn: Txn | None,
    ) -> Commit:
        key_range = self._key_range(path, source, keys)
        if table is None:
            inserts = source
            if isinstance(spec.not_matched_insert, str):
                inserts = source.alias("s").where(F.expr(spec.not_matched_insert))
            elif not spec.not_matched_insert:
                inserts = source.limit(0)
            return self.write(path, inserts, mode="append", txn=txn)
        schema = spark_schema(table)
        extra = [c for c in source.columns if c not in schema.names]
        if extra:
            log.info("%s: merge source columns %s are used in conditions, not written", path,
                     extra)
        shared = [c for c in source.columns if c in schema.names]
        evolved_schema(T.StructType([f for f in schema.fields if f.name in shared]),
                       source.select(*shared).schema, path)
        parts = list(table.metadata().partition_columns)
        touched = self._files_with_keys(table, source, keys, key_range)
        target = self._scan(table, touched).withColumn("__t", F.lit(True))
        src = source.withColumn("__s", F.lit(True))
        on = None
        for k in keys:
            clause = F.col(f"t.`{k}`") == F.col(f"s.`{k}`")
            on = clause if on is None else on & clause
        joined = target.alias("t").join(src.alias("s"), on, "full_outer")
        in_t, in_s = F.col("t.__t").isNotNull(), F.col("s.__s").isNotNull()
        matched = in_t & in_s

        def cond(value: bool | str | None) -> Any:
            if isinstance(value, str):
                return F.coalesce(F.expr(value), F.lit(False))
            return F.lit(bool(value))

        action = (
            F.when(matched & cond(spec.matched_delete), "delete")
            .when(matched & cond(spec.matched_update), "update")
            .when(in_t, "keep")
            .when(cond(spec.not_matched_insert), "insert")
            .otherwise("drop")
        )
        rows = joined.withColumn("__action", action).where(
            F.col("__action").isin("keep", "update", "insert"))
        columns = []
        for field in schema.fields:  # each side cast first: arrays may differ in nullability
            loose = loose_type(field.dataType)
            t_col = F.col(f"t.`{field.name}`").cast(loose)
            if field.name in source.columns:
                value = F.when(F.col("__action") == "keep", t_col).otherwise(
                    F.col(f"s.`{field.name}`").cast(loose))
            else:
                value = F.when(F.col("__action") == "keep", t_col).otherwise(
                    F.when(F.col("__action") == "update", t_col))
            columns.append(value.cast(loose).alias(field.name))
        result = conform(rows.select(*columns), schema, path)
        adds = self._write_files(path, result, parts, schema)
        commit = self._commit(path, table, "MERGE", adds, touched, schema, parts, txn)
        log.info("%s: MERGE committed version %s (rewrote %s of %s files)", path,
                 commit.version, len(touched), len(self._files(table)))
        return commit

    @staticmethod
    def _key_range(path: str, source: DataFrame, keys: list[str]) -> tuple[Any, Any]:
        """Min and max of the first key over the source, failing on duplicate keys (one job)."""
        per_key = source.where(" AND ".join(f"`{k}` IS NOT NULL" for k in keys)).groupBy(
            *keys).count()
        profile = per_key.agg(F.max("count"), F.min(keys[0]), F.max(keys[0])).first()
        if (profile[0] or 0) > 1:
            dupes = per_key.where("count > 1").limit(3).collect()
            shown = ", ".join(str(tuple(r[k] for k in keys)) for r in dupes)
            raise MergeKeyError(
                f"{path}: the merge source has several rows for the same key {keys} "
                f"(e.g. {shown}); de-duplicate the source first"
            )
        return profile[1], profile[2]

    def _files_with_keys(
        self, table: DeltaTable, source: DataFrame, keys: list[str], key_range: tuple[Any, Any]
    ) -> list[DataFile]:
        """Live files holding a row whose key appears in ``source``."""
        low, high = key_range
        if low is None:  # no non-null key: nothing can match
            return []
        files = self._files(table)
        first = keys[0]
        if isinstance(spark_schema(table)[first].dataType, _KEY_RANGE_TYPES):
            files = self._prune(
                table, files, f'"{first}" >= {_literal(low)} AND "{first}" <= {_literal(high)}')
        if not files:
            return []
        rows = (
            self._scan(table, files, with_file=True)
            .select(FILE_COL, *[F.col(f"`{k}`") for k in keys])
            .join(source.select(*keys).distinct(), keys, "left_semi")
        )
        return _files_holding(rows, files)

    # -- maintenance -------------------------------------------------------------------------
    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]:
        entries = self._require(path).history(limit)
        for entry in entries:
            entry["operation"] = entry.pop("seglake.operation", None) or entry.get("operation")
        return entries

    def vacuum(self, path: str, retention_hours: int) -> list[str]:
        table = self._require(path)
        deleted = table.vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
        staging = os.path.join(_local(path), STAGING_DIR)
        cutoff = time.time() - retention_hours * 3600
        if os.path.isdir(staging):
            for entry in os.scandir(staging):
                if entry.stat().st_mtime <= cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    deleted.append(os.path.join(STAGING_DIR, entry.name))
        log.info("%s: vacuum removed %s files", path, len(deleted))
        return deleted
