"""``ops.models``: every trained model with its parameters, metrics, the data versions it was
trained on and its artifact (a JSON definition, or the path of a persisted Spark pipeline)."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import functions as F

from seglake.declarations import MODELS, declared
from seglake.lakehouse import Lakehouse
from seglake.runlog import utc_now

SCHEMA = declared(MODELS).ddl


def record_model(lakehouse: Lakehouse, kind: str, run_id: str, *, params: dict[str, Any],
                 metrics: dict[str, Any], data_versions: dict[str, int],
                 artifact: str) -> int:
    """Append the next version of ``kind``; returns that version."""
    version = latest_version(lakehouse, kind) + 1
    row = (kind, version, run_id, utc_now(), json.dumps(params, sort_keys=True, default=str),
           json.dumps(metrics, sort_keys=True, default=str),
           json.dumps(data_versions, sort_keys=True), artifact)
    lakehouse.append(MODELS, lakehouse.spark.createDataFrame([row], SCHEMA))
    return version


def model_path(lakehouse: Lakehouse, kind: str, version: int) -> str:
    """Where version ``version`` of model ``kind`` is persisted: the one model-store layout."""
    return f"{lakehouse.root.rstrip('/')}/_models/{kind}/v{version}"


def latest_version(lakehouse: Lakehouse, kind: str) -> int:
    if not lakehouse.exists(MODELS):
        return 0
    found = lakehouse.read(MODELS).where(F.col("kind") == kind).agg(F.max("version")).first()[0]
    return int(found or 0)


def latest_model(lakehouse: Lakehouse, kind: str) -> dict[str, Any] | None:
    """The newest row of ``kind`` as a dict, or None."""
    version = latest_version(lakehouse, kind)
    if not version:
        return None
    row = lakehouse.read(MODELS).where((F.col("kind") == kind) & (F.col("version") == version)) \
        .first()
    return row.asDict()
