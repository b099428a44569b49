"""The SparkSession: the active one when there is one, otherwise a local one built from config."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from importlib import resources

from pyspark.sql import SparkSession

from seglake.config import SeglakeConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"

# Settings seglake's tables depend on; applied to active sessions too (they are runtime SQL confs).
RUNTIME_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.adaptive.enabled": "true",
}


def _splink_jar() -> str | None:
    from splink.internals.spark.jar_location import similarity_jar_location

    return similarity_jar_location()


# Jars that ship inside installed Python packages, added to local sessions.
PACKAGED_JARS: dict[str, Callable[[], str | None]] = {"splink": _splink_jar}


def packaged_jars() -> list[str]:
    """Paths of the jars that installed Python packages carry (missing packages are skipped)."""
    jars = []
    for package, locate in PACKAGED_JARS.items():
        try:
            path = locate()
        except ImportError:
            log.debug("%s is not installed: its jar is not added", package)
            continue
        if path and os.path.isfile(path):
            jars.append(path)
    return jars


def _log4j_config() -> str:
    return str(resources.files("seglake") / "resources" / "log4j2.properties")


def local_cores(master: str) -> int | None:
    """Threads of a ``local``, ``local[N]`` or ``local[*]`` master; None for a cluster."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if match is None:
        return None
    if match.group(1) is None:
        return 1
    return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))


def local_builder(config: SeglakeConfig) -> SparkSession.Builder:
    """The builder of a local session, with every setting seglake relies on."""
    spark_cfg = config.spark
    extra = {k: str(v) for k, v in spark_cfg.conf.items()}
    jars = [j for j in extra.pop("spark.jars", "").split(",") if j] + packaged_jars()
    java_opts = f"-Dlog4j2.configurationFile=file:{_log4j_config()}"
    if "spark.driver.extraJavaOptions" in extra:
        java_opts = f"{extra.pop('spark.driver.extraJavaOptions')} {java_opts}"
    builder = (
        SparkSession.builder.master(spark_cfg.master)
        .appName(spark_cfg.app_name)
        .config("spark.driver.memory", spark_cfg.driver_memory)
        .config("spark.ui.enabled", str(spark_cfg.ui_enabled).lower())
        # Spark's progress bar only where a person watches a terminal
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.jars", ",".join(jars))
    )
    partitions = spark_cfg.shuffle_partitions or local_cores(spark_cfg.master)
    if partitions:  # 0 on a cluster master: Spark's own default
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    for key, value in RUNTIME_CONF.items():
        builder = builder.config(key, value)
    if _delta_jars_configured(config, jars, extra):
        builder = builder.config("spark.sql.extensions", DELTA_EXTENSION)
    for key, value in extra.items():
        builder = builder.config(key, value)
    return builder


def _delta_jars_configured(config: SeglakeConfig, jars: list[str], extra: dict[str, str]) -> bool:
    if config.lakehouse.backend == "delta-rs":
        return False
    wanted = " ".join(jars + [extra.get("spark.jars.packages", "")])
    return "delta-spark" in wanted or "delta-core" in wanted


def get_spark(config: SeglakeConfig) -> SparkSession:
    """The active session (spark-submit, Databricks, notebooks) or a new local one."""
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in RUNTIME_CONF.items():
            if active.conf.get(key, None) != value:
                log.info("setting %s=%s on the active Spark session", key, value)
                active.conf.set(key, value)
        return active
    log.info("starting a local Spark session (%s)", config.spark.master)
    # Python workers (pandas UDFs) must run this interpreter, which has seglake's packages
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = local_builder(config).getOrCreate()
    spark.sparkContext.setLogLevel(config.spark.log_level)
    return spark
