"""The interface every Delta backend implements, on table paths; names live in ``Lakehouse``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T


@dataclass(frozen=True)
class Txn:
    """Idempotence token: a write carrying (app_id, version) is skipped once the table holds it."""

    app_id: str
    version: int


@dataclass(frozen=True)
class Commit:
    """What one write did to a table (``skipped`` when a ``Txn`` had already been applied)."""

    table: str
    operation: str
    version: int | None
    files_added: int = 0
    files_removed: int = 0
    rows_added: int | None = None
    rows_removed: int | None = None
    skipped: bool = False


@dataclass(frozen=True)
class MergeSpec:
    """Clauses of a merge. Conditions are SQL over aliases ``s`` (source) and ``t`` (target)."""

    on: tuple[str, ...]
    matched_update: bool | str = True
    matched_delete: str | None = None
    not_matched_insert: bool | str = True


class Backend(ABC):
    """Delta reads and single-commit writes on one table path."""

    name: str

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def version(self, path: str) -> int: ...

    @abstractmethod
    def read(self, path: str, version: int | None = None) -> DataFrame: ...

    spark: SparkSession

    def frame(self, rows: DataFrame | pa.Table) -> DataFrame:
        """Rows as a Spark frame: Arrow rows (from the driver) become one."""
        from seglake.session import arrow_frame

        return rows if isinstance(rows, DataFrame) else arrow_frame(self.spark, rows)

    @staticmethod
    def frame_schema(rows: DataFrame | pa.Table) -> T.StructType:
        """The Spark schema of rows, Spark's or Arrow's."""
        if isinstance(rows, DataFrame):
            return rows.schema
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(rows.schema)

    @abstractmethod
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
    ) -> Commit: ...

    @abstractmethod
    def merge(
        self, path: str, source: DataFrame, spec: MergeSpec, txn: Txn | None = None
    ) -> Commit: ...

    @abstractmethod
    def delete(self, path: str, condition: str, txn: Txn | None = None) -> Commit: ...

    @abstractmethod
    def history(self, path: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def vacuum(self, path: str, retention_hours: int) -> list[str]: ...

    def columns(self, path: str) -> list[str]:
        """The table's column names (its schema, without reading it where the backend can)."""
        return self.read(path).columns

    def local_files(self, path: str, where: str | None = None) -> list[str] | None:
        """The Parquet files of the table's current version, when reading them whole (no
        deletion vectors, no column mapping to apply) gives its rows and the driver sees them;
        None when only Spark can read the table. With ``where`` (SQL), those whose statistics
        say they may hold a row where it holds: a reader still filters their rows."""
        return None

    def expire_history(self, path: str) -> None:
        """Checkpoint the latest version and delete the log entries of the older ones.

        Old commits keep per-file statistics (min/max of every column), so after an erasure
        they would still name the subject; vacuum removes the data files, this the log. Works
        on the Delta log itself (deltalake), whichever engine wrote it; local paths only."""
        from deltalake import DeltaTable

        uri = path.removeprefix("file:")
        table = DeltaTable(uri)
        previous = table.metadata().configuration.get("delta.logRetentionDuration")
        table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
        table = DeltaTable(uri)
        table.create_checkpoint()
        table.cleanup_metadata()
        DeltaTable(uri).alter.set_table_properties(
            {"delta.logRetentionDuration": previous or "interval 30 days"})
