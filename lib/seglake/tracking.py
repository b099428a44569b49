"""MLflow tracking of every trained model, as the ecosystem expects: one MLflow run per model
version with its parameters, metrics, input table versions and artifacts; Spark ML models
logged with the Spark flavour and registered, the champion and the best challenger under the
aliases ``champion`` and ``challenger`` (aliases, not the deprecated stages).

Where: ``tracking.uri`` when set, else ``MLFLOW_TRACKING_URI`` (a Databricks workspace, a
server), else a SQLite store under ``tracking.root`` (default ``./mlruns``; MLflow 3
keeps its file store in maintenance mode). ``ops.models`` keeps the run's id. Tracking that
fails (a server down) is a warning: the model is still recorded in ``ops.models``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seglake.config import TrackingConfig

log = logging.getLogger(__name__)

MAX_PARAM = 6000  # characters MLflow keeps of a parameter value


# the platform's store (Databricks sets it), read before mlflow.set_tracking_uri, which sets
# the variable itself, can change it for this process
PLATFORM_URI = os.environ.get("MLFLOW_TRACKING_URI", "")


def tracking_uri(tracking: TrackingConfig) -> str:
    """The store: the configured one, the platform's, or SQLite under ``tracking.root``."""
    if tracking.uri:
        return tracking.uri
    if PLATFORM_URI:
        return PLATFORM_URI
    root = Path(tracking.root).absolute()
    return f"sqlite:///{root / 'mlflow.db'}"


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def params_of(params: Mapping[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow parameters: dotted keys, JSON values cut to MLflow's limit."""
    flat: dict[str, Any] = {}
    _flat("", params, flat)
    return {k: (v if isinstance(v, str) else json.dumps(v, default=str))[:MAX_PARAM]
            for k, v in flat.items()}


def metrics_of(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among ``metrics`` (nested dicts dotted; lists and text left to artifacts)."""
    flat: dict[str, Any] = {}
    _flat("", metrics, flat)
    return {k: float(v) for k, v in flat.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def _experiment(mlflow: Any, tracking: TrackingConfig, uri: str) -> str:
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(tracking.experiment)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:"):  # artifacts next to the database, not in the working dir
        location = (Path(tracking.root).absolute() / "artifacts").as_uri()
    return mlflow.create_experiment(tracking.experiment, artifact_location=location)


def track(tracking: TrackingConfig, kind: str, version: int, seglake_run_id: str, *,
          params: Mapping[str, Any], metrics: Mapping[str, Any],
          data_versions: Mapping[str, int], models: Mapping[str, Any] | None = None,
          model_metrics: Mapping[str, Mapping[str, Any]] | None = None,
          champion: str | None = None, metric: str = "roc_auc",
          files: Mapping[str, str] | None = None) -> str | None:
    """Log version ``version`` of model ``kind``; returns the MLflow run id (None when tracking
    is off or failed). ``models``: Spark ML models by name (a contest's families), each logged
    in a nested run with its ``model_metrics`` and registered as ``<prefix><kind>``; the
    ``champion`` gets that alias, the best other one by ``metric`` ``challenger``."""
    if not tracking.enabled:
        return None
    try:
        import mlflow
        import mlflow.spark  # noqa: F401 - the Spark flavour

        uri = tracking_uri(tracking)
        experiment = _experiment(mlflow, tracking, uri)
        tags = {"seglake.kind": kind, "seglake.version": str(version),
                "seglake.run_id": seglake_run_id}
        with mlflow.start_run(experiment_id=experiment, run_name=f"{kind} v{version}",
                              tags=tags) as run:
            mlflow.log_params({**params_of(params), **{f"input.{t}": str(v) for t, v in
                                                       data_versions.items()}})
            mlflow.log_metrics(metrics_of(metrics))
            mlflow.log_dict(json.loads(json.dumps(metrics, default=str)), "metrics.json")
            for name, text in (files or {}).items():
                mlflow.log_text(text, name)
            versions = {}
            for name, model in (models or {}).items():
                versions[name] = _log_spark_model(mlflow, tracking, kind, version, name, model,
                                                  (model_metrics or {}).get(name, {}), tags,
                                                  experiment, champion)
            _aliases(mlflow, f"{tracking.registry_prefix}{kind}", versions, model_metrics,
                     champion, metric)
        log.info("tracking: %s v%d logged to MLflow run %s (%s)", kind, version,
                 run.info.run_id, uri.split("?")[0])
        return run.info.run_id
    except Exception as exc:  # noqa: BLE001 - tracking must not lose the model itself
        log.warning("tracking: %s v%d was not logged to MLflow (%s: %s); it is in ops.models",
                    kind, version, type(exc).__name__, str(exc).splitlines()[0][:300])
        log.debug("tracking: the trace", exc_info=True)
        return None


def _log_spark_model(mlflow: Any, tracking: TrackingConfig, kind: str, version: int, name: str,
                     model: Any, metrics: Mapping[str, Any], tags: Mapping[str, str],
                     experiment: str, champion: str | None) -> str:
    """A nested run holding one Spark ML model; returns its registered version."""
    from importlib import metadata

    with mlflow.start_run(experiment_id=experiment, run_name=f"{kind} v{version} {name}",
                          nested=True, tags={**tags, "seglake.family": name,
                                             "seglake.champion": str(name == champion)}):
        mlflow.log_metrics(metrics_of(metrics))
        # the requirements named: inferring them would load the model in a subprocess
        info = mlflow.spark.log_model(
            model, "model", pip_requirements=[f"pyspark=={metadata.version('pyspark')}"])
        if champion is None:  # the parts of one model (clustering): logged, not contestants
            return ""
        registered = mlflow.register_model(info.model_uri, f"{tracking.registry_prefix}{kind}",
                                           tags={"seglake.family": name,
                                                 "seglake.version": str(version)})
    return registered.version


def _aliases(mlflow: Any, registered: str, versions: Mapping[str, str],
             model_metrics: Mapping[str, Mapping[str, Any]] | None,
             champion: str | None, metric: str) -> None:
    if not versions or champion not in versions:
        return
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(registered, "champion", versions[champion])
    others = [n for n in versions if n != champion]
    if others and model_metrics:
        best = max(others, key=lambda n: model_metrics[n].get(metric, 0.0))
        client.set_registered_model_alias(registered, "challenger", versions[best])
