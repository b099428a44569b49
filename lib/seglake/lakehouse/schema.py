"""Schema rules shared by both backends: what an incoming DataFrame may do to a table."""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake.lakehouse.errors import SchemaMismatchError

PARTITION_TYPES = (
    T.StringType,
    T.DateType,
    T.IntegerType,
    T.LongType,
    T.ShortType,
    T.ByteType,
    T.BooleanType,
)


def loose_type(dtype: T.DataType) -> T.DataType:
    """The type with nullability and metadata erased, for comparisons."""
    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, loose_type(f.dataType)) for f in dtype.fields])
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(loose_type(dtype.elementType))
    if isinstance(dtype, T.MapType):
        return T.MapType(loose_type(dtype.keyType), loose_type(dtype.valueType))
    return dtype


_INTEGRAL_RANK = {T.ByteType: 1, T.ShortType: 2, T.IntegerType: 3, T.LongType: 4}


def widens_to(incoming: T.DataType, target: T.DataType) -> bool:
    """True when every ``incoming`` value converts to ``target`` without loss."""
    if loose_type(incoming) == loose_type(target) or isinstance(incoming, T.NullType):
        return True
    rank_in, rank_to = _INTEGRAL_RANK.get(type(incoming)), _INTEGRAL_RANK.get(type(target))
    if rank_in and rank_to:
        return rank_in <= rank_to
    if isinstance(target, T.DoubleType):
        return isinstance(incoming, T.FloatType) or (rank_in or 9) <= 3
    if isinstance(incoming, T.DecimalType) and isinstance(target, T.DecimalType):
        return (incoming.scale <= target.scale
                and incoming.precision - incoming.scale <= target.precision - target.scale)
    return False


def check_partition_columns(schema: T.StructType, partition_by: list[str], table: str) -> None:
    for name in partition_by:
        if name not in schema.names:
            raise SchemaMismatchError(f"{table}: partition column '{name}' is not in the data")
        dtype = schema[name].dataType
        if not isinstance(dtype, PARTITION_TYPES):
            raise SchemaMismatchError(
                f"{table}: cannot partition by '{name}' of type {dtype.simpleString()}; "
                "use a string, date, integer or boolean column"
            )


def evolved_schema(table_schema: T.StructType, incoming: T.StructType, table: str) -> T.StructType:
    """Table schema plus the incoming new columns (as nullable); raise on an incompatible change."""
    incoming_by_name = {f.name: f for f in incoming.fields}
    problems = []
    for field in table_schema.fields:
        new = incoming_by_name.get(field.name)
        if new is None:
            if not field.nullable:
                problems.append(f"non-null column '{field.name}' is missing from the data")
        elif not widens_to(new.dataType, field.dataType):
            problems.append(
                f"column '{field.name}' changes type from {field.dataType.simpleString()} "
                f"to {new.dataType.simpleString()}"
            )
    lower = {n.lower(): n for n in table_schema.names}
    added = []
    for field in incoming.fields:
        if field.name in table_schema.names:
            continue
        if field.name.lower() in lower:
            problems.append(
                f"column '{field.name}' differs only in case from '{lower[field.name.lower()]}'"
            )
        if isinstance(field.dataType, T.NullType):
            problems.append(f"new column '{field.name}' has no type (all NULL); cast it")
        added.append(T.StructField(field.name, field.dataType, True, field.metadata))
    if problems:
        raise SchemaMismatchError(
            f"{table}: the data does not fit the table schema: " + "; ".join(problems)
            + ". Cast the columns, or overwrite the table with overwrite_schema=True."
        )
    return T.StructType(list(table_schema.fields) + added)


def conform(df: DataFrame, target: T.StructType, table: str) -> DataFrame:
    """``df`` with the target's columns in order, and a runtime check of non-null columns."""
    present = set(df.columns)
    columns: list[Column] = []
    checks: list[Column] = []
    for field in target.fields:
        if field.name in present:
            column = F.col(f"`{field.name}`")
            if loose_type(df.schema[field.name].dataType) != loose_type(field.dataType):
                column = column.cast(field.dataType)
            if not field.nullable and df.schema[field.name].nullable:
                checks.append(column.isNull())
        else:
            column = F.lit(None).cast(field.dataType)
        columns.append(column.alias(field.name))
    out = df.select(*columns)
    if checks:
        any_null = checks[0]
        for check in checks[1:]:
            any_null = any_null | check
        message = f"{table}: a NULL in a non-null column ({', '.join(_non_null(target))})"
        out = out.where(F.when(any_null, F.raise_error(F.lit(message))).otherwise(F.lit(True)))
    return out


def _non_null(schema: T.StructType) -> list[str]:
    return [f.name for f in schema.fields if not f.nullable]


def conform_arrow(table: Any, target: T.StructType, name: str) -> Any:
    """``conform`` for Arrow rows written from the driver: the target's columns in order, of
    its types (a missing one null), and a check of non-null columns."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(target, timezone="UTC")  # Delta timestamps are UTC instants
    columns = []
    for field in target.fields:
        kind = schema.field(field.name).type
        column = table[field.name].cast(kind) if field.name in table.column_names \
            else pa.nulls(table.num_rows, kind)
        if not field.nullable and column.null_count:
            raise SchemaMismatchError(f"{name}: a NULL in a non-null column ({field.name})")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def arrow_rows(rows: list[tuple[Any, ...]], ddl: str) -> Any:
    """Rows made in the driver (tuples in the order of ``ddl``'s columns) as Arrow of its
    types: a Lakehouse write of them is one commit with no Spark job (naive datetimes are UTC,
    as the session's time zone reads them)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(T.StructType.fromDDL(ddl), timezone="UTC")
    return pa.Table.from_pylist([dict(zip(schema.names, row, strict=True)) for row in rows],
                                schema=schema)
