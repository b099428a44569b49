"""What every exploration notebook starts with, in one call: the configuration, the Spark
session (Databricks' own there, a local one elsewhere) and the lakehouse."""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession

from seglake.config import SeglakeConfig, load_config
from seglake.lakehouse import Lakehouse
from seglake.session import get_spark


def notebook_context() -> tuple[SeglakeConfig, SparkSession, Lakehouse]:
    """Config from ``SEGLAKE_CONFIG`` (default ``conf/seglake.yaml``), session, lakehouse."""
    config = load_config(os.environ.get("SEGLAKE_CONFIG", "conf/seglake.yaml"))
    spark = get_spark(config)
    return config, spark, Lakehouse.from_config(spark, config)


def show(df: DataFrame, n: int = 100) -> None:
    """Stands in for Databricks' ``display`` outside Databricks."""
    df.show(n, truncate=False)
