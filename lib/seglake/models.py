"""``ops.models``: every trained model with its parameters, metrics, the data versions it was
trained on and its artifact (a JSON definition, or the path of a persisted Spark pipeline)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.config import FlagsConfig, TrackingConfig
from seglake.declarations import FLAGS, MODELS, declared
from seglake.lakehouse import Lakehouse, parquet_scan
from seglake.lakehouse.schema import arrow_rows
from seglake.runlog import utc_now
from seglake.tracking import track

SCHEMA = declared(MODELS).ddl

# rows per partition of a model's training data: enough to keep a partition's task worth its
# start-up, few enough for the partitions of a million customers to use a cluster's cores
ROWS_PER_PARTITION = 100_000


def fitting_layout(df: DataFrame, rows: int, key: str = "customer_key") -> DataFrame:
    """``df`` partitioned by the hash of ``key`` and sorted within: a seeded estimator (K-means
    starts, bootstrap samples, forests, folds) then fits the same model on any cluster or core
    count, because its partitions depend on the rows alone."""
    return df.repartition(max(1, -(-rows // ROWS_PER_PARTITION)), key).sortWithinPartitions(key)


def fit_sample(df: DataFrame, rows: int, limit: int, seed: int,
               key: str = "customer_key") -> DataFrame:
    """``df`` (of ``rows`` rows) itself when ``rows <= limit``, else about ``limit`` of its rows
    chosen by a seeded hash of ``key``: a model's fit cost stays bounded as the customers grow,
    and a customer drawn once is drawn on every run with the same seed."""
    if rows <= limit:
        return df
    buckets = 1_000_000
    draw = F.pmod(F.xxhash64(F.lit(seed), F.col(key)), F.lit(buckets))
    return df.where(draw < F.lit(limit * buckets // rows))


def unflagged(df: DataFrame, lakehouse: Lakehouse, conf: FlagsConfig, as_of: dt.date,
              key: str = "customer_key") -> DataFrame:
    """``df`` less the bots and outliers ``gold.customer_flags`` holds as of ``as_of``: a model
    fitted on their extremes serves everyone else worse (``flags.exclude_from_models``)."""
    if not conf.exclude_from_models or not lakehouse.exists(FLAGS):
        return df
    flagged = lakehouse.read(FLAGS).where(F.col("as_of") == F.lit(as_of)) \
        .select(F.col("customer_key").alias(key)).distinct()
    return df.join(flagged, key, "left_anti")


def record_model(lakehouse: Lakehouse, kind: str, run_id: str, *, params: dict[str, Any],
                 metrics: dict[str, Any], data_versions: dict[str, int],
                 artifact: str, tracking: TrackingConfig | None = None,
                 models: dict[str, Any] | None = None,
                 model_metrics: dict[str, dict[str, Any]] | None = None,
                 champion: str | None = None, champion_metric: str = "roc_auc",
                 files: dict[str, str] | None = None) -> int:
    """Append the next version of ``kind`` (logged to MLflow first when ``tracking``, with
    ``models`` and the rest as ``seglake.tracking.track`` takes them); returns that version."""
    version = latest_version(lakehouse, kind) + 1
    mlflow_run = None
    if tracking is not None:
        mlflow_run = track(tracking, kind, version, run_id, params=params, metrics=metrics,
                           data_versions=data_versions, models=models,
                           model_metrics=model_metrics, champion=champion,
                           metric=champion_metric, files=files)
    row = (kind, version, run_id, utc_now(), json.dumps(params, sort_keys=True, default=str),
           json.dumps(metrics, sort_keys=True, default=str),
           json.dumps(data_versions, sort_keys=True), artifact, mlflow_run)
    lakehouse.append(MODELS, arrow_rows([row], SCHEMA))
    return version


def model_path(lakehouse: Lakehouse, kind: str, version: int) -> str:
    """Where version ``version`` of model ``kind`` is persisted: the one model-store layout."""
    return f"{lakehouse.root.rstrip('/')}/_models/{kind}/v{version}"


def latest_version(lakehouse: Lakehouse, kind: str) -> int:
    row = latest_model(lakehouse, kind)
    return 0 if row is None else int(row["version"])


def latest_model(lakehouse: Lakehouse, kind: str) -> dict[str, Any] | None:
    """The newest row of ``kind`` as a dict, or None; read in the driver from the table's
    files where it has some (two Spark jobs took 0.3 s, at every resolve's start and end)."""
    if not lakehouse.exists(MODELS):
        return None
    files = lakehouse.local_files(MODELS)
    if files is None:
        models = lakehouse.read(MODELS).where(F.col("kind") == kind)
        version = models.agg(F.max("version")).first()[0]
        row = None if version is None else models.where(F.col("version") == version).first()
        return None if row is None else row.asDict()
    if not files:
        return None
    import duckdb

    con = duckdb.connect()
    try:
        found = con.execute(f"select * from {parquet_scan(files)} "
                            "where kind = $kind order by version desc limit 1", {"kind": kind})
        names = [d[0] for d in found.description]
        row = found.fetchone()
    finally:
        con.close()
    if row is None:
        return None
    # as Spark gives them: timestamps naive in UTC (the session's time zone)
    return {n: v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            if isinstance(v, dt.datetime) and v.tzinfo is not None else v
            for n, v in zip(names, row, strict=True)}


def spread(names: list[str]) -> list[F.Column]:
    """Min and max of each column as a double (NaN as null), for ``informative``; aggregates
    a caller can add to a query it runs anyway."""
    aggs = []
    for n in names:  # SQL text: one call into the JVM per aggregate (a hundred inputs)
        value = f"CASE WHEN NOT isnan(CAST(`{n}` AS DOUBLE)) THEN CAST(`{n}` AS DOUBLE) END"
        aggs += [F.expr(f"min({value}) AS `min:{n}`"), F.expr(f"max({value}) AS `max:{n}`")]
    return aggs


def informative(row: dict[str, Any], names: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped) from the ``spread`` aggregates of ``row``: columns with at least two
    distinct non-null values are kept; a column entirely null or constant (a data family the
    retailer does not send) cannot inform a model and would stop median imputation."""
    kept = [n for n in names if row[f"min:{n}"] is not None and row[f"min:{n}"] != row[f"max:{n}"]]
    return kept, [n for n in names if n not in kept]


def informative_columns(df: DataFrame, names: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped) columns of ``df`` (see ``informative``), in one pass."""
    if not names:
        return [], []
    return informative(df.agg(*spread(names)).first().asDict(), names)
