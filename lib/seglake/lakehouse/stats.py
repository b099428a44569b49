"""Delta per-file statistics from a Parquet footer, so readers can skip files.

Bounds are conservative: a min is never above the true minimum and a max never below the true
maximum (timestamps are widened to milliseconds, decimals to the enclosing doubles, long strings
lose their max), because a bound that is too tight makes a reader skip a file it needs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import types as T

STRING_PREFIX = 32
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def leaf_columns(schema: T.StructType, prefix: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Parquet leaf path -> (key path, Spark type) of primitive columns and struct leaves."""
    leaves: dict[str, tuple] = {}
    for field in schema.fields:
        path = (*prefix, field.name)
        if isinstance(field.dataType, T.StructType):
            leaves.update(leaf_columns(field.dataType, path))
        elif not isinstance(field.dataType, (T.ArrayType, T.MapType)):
            leaves[".".join(path)] = (path, field.dataType)
    return leaves


def _micros(value: Any) -> int:
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timestamp(value: Any, upper: bool) -> str:
    micros = _micros(value)
    millis = -(-micros // 1000) if upper else micros // 1000
    moment = _EPOCH + dt.timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def json_bound(value: Any, dtype: T.DataType, upper: bool) -> Any:
    """A JSON value that bounds ``value`` from below (min) or above (max); None when unsafe."""
    if value is None:
        return None
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        return _timestamp(value, upper)
    if isinstance(dtype, T.DateType):
        if isinstance(value, int):
            value = dt.date(1970, 1, 1) + dt.timedelta(days=value)
        return value.isoformat()
    if isinstance(dtype, _NUMERIC):
        return int(value)
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(dtype, T.DecimalType):
        number = float(Decimal(value))
        if not math.isfinite(number):
            return None
        return math.nextafter(number, math.inf if upper else -math.inf)
    if isinstance(dtype, T.StringType):
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if len(text) <= STRING_PREFIX:
            return text
        return None if upper else text[:STRING_PREFIX]
    return None


def _nest(target: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def file_stats(metadata: pq.FileMetaData, schema: T.StructType) -> dict[str, Any]:
    """Delta ``stats`` (numRecords, minValues, maxValues, nullCount) of one data file."""
    leaves = leaf_columns(schema)
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    nulls: dict[str, int | None] = {}
    no_bounds: set[str] = set()
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        if group.num_rows == 0:
            continue
        for ci in range(group.num_columns):
            chunk = group.column(ci)
            name = chunk.path_in_schema
            if name not in leaves:
                continue
            stats = chunk.statistics
            if stats is None or not stats.has_null_count:
                nulls[name] = None
            elif nulls.get(name, 0) is not None:
                nulls[name] = nulls.get(name, 0) + stats.null_count
            if stats is None or not stats.has_min_max:
                if stats is None or stats.null_count != group.num_rows:
                    no_bounds.add(name)
                continue
            if name not in lows or stats.min < lows[name]:
                lows[name] = stats.min
            if name not in highs or stats.max > highs[name]:
                highs[name] = stats.max
    result: dict[str, Any] = {"numRecords": metadata.num_rows}
    mins: dict = {}
    maxes: dict = {}
    counts: dict = {}
    for name, (path, dtype) in leaves.items():
        if nulls.get(name) is not None:
            _nest(counts, path, nulls[name])
        if name in no_bounds or name not in lows:
            continue
        low = json_bound(lows[name], dtype, upper=False)
        high = json_bound(highs[name], dtype, upper=True)
        if low is not None:
            _nest(mins, path, low)
        if high is not None:
            _nest(maxes, path, high)
    result.update(minValues=mins, maxValues=maxes, nullCount=counts)
    return result


def stats_json(metadata: pq.FileMetaData, schema: T.StructType) -> str:
    return json.dumps(file_stats(metadata, schema), ensure_ascii=False)
