"""Typed configuration: YAML file + ``SEGLAKE__SECTION__KEY`` environment overrides.

Everything is validated before Spark starts, so a typo costs a second, not a JVM start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "SEGLAKE__"
DEFAULT_CONFIG_PATH = Path("conf/seglake.yaml")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key, variable or file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LakehouseConfig(_Section):
    root: str = Field(
        "./lakehouse",
        description="Where tables live: `<root>/<layer>/<table>`. A directory (or mounted "
        "path); object-store URIs need the delta-spark backend.",
    )
    backend: Literal["auto", "delta-spark", "delta-rs"] = Field(
        "auto",
        description="Delta implementation: delta-spark when its jars are on the JVM classpath "
        "(auto picks it then), otherwise delta-rs commits Spark-written Parquet files.",
    )
    vacuum_retention_hours: int = Field(
        168, ge=0, description="Default age after which vacuum deletes unreferenced files."
    )


class LandingConfig(_Section):
    root: str = Field("./demo/landing", description="Where the sources deliver their files.")


class TruthConfig(_Section):
    root: str = Field(
        "./demo/truth",
        description="Ground truth written by the demo generator (no stage reads it).",
    )


class ReportsConfig(_Section):
    root: str = Field("./reports", description="One folder per run: HTML report, diagnostics.")


class SparkConfig(_Section):
    master: str = Field("local[*]", description="Master URL for a session seglake builds itself.")
    app_name: str = Field("seglake", description="Spark application name.")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions.")
    driver_memory: str = Field("4g", description="spark.driver.memory (local sessions only).")
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = Field(
        "WARN", description="Spark log level."
    )
    ui_enabled: bool = Field(False, description="Start the Spark web UI for local sessions.")
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra Spark settings passed to the session builder."
    )


class SeglakeConfig(_Section):
    """The one configuration object handed to every stage."""

    lakehouse: LakehouseConfig = Field(default_factory=LakehouseConfig)
    landing: LandingConfig = Field(default_factory=LandingConfig)
    truth: TruthConfig = Field(default_factory=TruthConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict of ``SEGLAKE__A__B=value`` variables; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}<SECTION>__<KEY>, "
                f"e.g. {ENV_PREFIX}LAKEHOUSE__ROOT"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        where = sources.get(key, "")
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'{where}")
        elif item["type"] == "missing":
            lines.append(f"missing key '{key}'{where}")
        else:
            lines.append(f"key '{key}'{where}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _env_sources(nested: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    sources = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            sources.update(_env_sources(value, dotted + "."))
        else:
            var = ENV_PREFIX + dotted.replace(".", "__").upper()
            sources[dotted] = f" (from environment variable {var})"
    return sources


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> SeglakeConfig:
    """Read ``path`` (default ``conf/seglake.yaml`` when present), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    file_note = ""
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping of sections at top level")
        data = loaded or {}
        file_note = f" in {file}"
    overrides = env_overrides(environ)
    sources = {k: file_note for k in _flat_keys(data)}
    sources.update(_env_sources(overrides))
    try:
        return SeglakeConfig.model_validate(_deep_merge(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


def _flat_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys.extend(_flat_keys(value, dotted + "."))
    return keys


def config_reference() -> str:
    """Markdown table of every key with its default and meaning, generated from the model."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    defaults = SeglakeConfig().model_dump()
    for section, field in SeglakeConfig.model_fields.items():
        for key, sub in field.annotation.model_fields.items():
            rows.append(f"| `{section}.{key}` | `{defaults[section][key]}` | {sub.description} |")
    return "\n".join(rows)
