"""The SparkSession: the active one, the one spark-submit configured, or a local one from config.

Where a launcher owns Spark (spark-submit, Databricks, a notebook) its master, name, jars,
packages, Python and resources are kept as given; seglake adds only what its tables need (UTC,
microsecond timestamps, adaptive execution) and appends its packaged jars to ``spark.jars``.
Local defaults (``spark.master``, driver memory) apply only when seglake itself launches Spark.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"

# Settings seglake's tables depend on; applied to active sessions too (they are runtime SQL confs).
RUNTIME_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def _splink_jar() -> str | None:
    from splink.internals.spark.jar_location import similarity_jar_location

    return similarity_jar_location()


# Shuffles follow the data size: Spark's 200 shuffle partitions coalesced by adaptive execution,
# cached plans too, rather than one partition per local core (two ~1 GB partitions of the medium
# world's events ran a 4 GB driver out of memory). Locally they are coalesced to no fewer than
# the cores while that keeps them under ~64 MB (Spark's parallelismFirst); on a cluster to
# ~64 MB each (spark.sql.adaptive.advisoryPartitionSizeInBytes), not 200 tiny tasks per shuffle
# (58,000 tasks scored 2,000 customers). Defaults only: a submitted conf, or
# spark.shuffle_partitions, wins.
SIZE_DRIVEN_SHUFFLES = {
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}
# Up to 200 reduce partitions Spark's shuffle writes one file per partition and map task, then
# concatenates them ("bypass merge"); with 200 partitions of small data those files are most of
# a shuffle's cost. A local session sorts instead (one file per map task): the identity map of
# 10,000 records 6.3 -> 3.6 s, a warm resolve of them 24 -> 19 s (2 cores). Clusters keep
# Spark's default.
LOCAL_SIZE_DRIVEN_SHUFFLES = {**SIZE_DRIVEN_SHUFFLES,
                              "spark.shuffle.sort.bypassMergeThreshold": "1"}
# PySpark 4 records the Python call site of every DataFrame and Column call for error messages:
# five or so extra round trips to the JVM per call, a tenth of a small pipeline's time.
# seglake's errors name the stage, table and column themselves; set it to true to debug.
# Adaptive execution sizes the shuffles above and turns joins of small sides into broadcasts:
# on unless the conf says otherwise (an active session keeps its own setting). On a few MB in
# fixed partitions its extra jobs cost more than it saves: the test suite turns it off.
DRIVER_DEFAULTS = {"spark.python.sql.dataFrameDebugging.enabled": "false",
                   "spark.sql.adaptive.enabled": "true"}
CLUSTER_DEFAULTS = {
    **SIZE_DRIVEN_SHUFFLES,
    **DRIVER_DEFAULTS,
    "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
}

# Jars that ship inside installed Python packages, added to every session seglake creates.
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
    if spark_cfg.shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions",
                                 str(spark_cfg.shuffle_partitions))
    else:
        for key, value in LOCAL_SIZE_DRIVEN_SHUFFLES.items():
            builder = builder.config(key, value)
    for key, value in {**DRIVER_DEFAULTS, **RUNTIME_CONF}.items():
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


def submitted_conf() -> dict[str, str] | None:
    """The conf spark-submit gave this driver (it started the JVM first); None without one."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit for a Python driver
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM (as SparkContext does)
    conf = dict(SparkConf().getAll())  # its spark.* system properties
    return conf if "spark.master" in conf else None


def appended_jars(given: str | None) -> str:
    """``spark.jars`` as given, with the packaged jars it lacks appended."""
    jars = [j for j in (given or "").split(",") if j]
    names = {os.path.basename(j) for j in jars}
    return ",".join(jars + [j for j in packaged_jars() if os.path.basename(j) not in names])


def submitted_builder(submitted: dict[str, str]) -> SparkSession.Builder:
    """The builder under spark-submit: the submitted conf untouched but for what seglake owns."""
    builder = SparkSession.builder.config("spark.jars", appended_jars(submitted.get("spark.jars")))
    for key, value in RUNTIME_CONF.items():
        builder = builder.config(key, value)
    for key, value in CLUSTER_DEFAULTS.items():
        if key not in submitted:
            builder = builder.config(key, value)
    return builder


def _load_appended_jars(spark: SparkSession, submitted: dict[str, str]) -> None:
    """Jars set on a JVM already running reach the executors, not the driver's class loader."""
    given = {os.path.basename(j) for j in submitted.get("spark.jars", "").split(",") if j}
    for jar in packaged_jars():
        if os.path.basename(jar) not in given:
            spark.sql(f"ADD JAR '{jar}'")


def get_spark(config: SeglakeConfig) -> SparkSession:
    """The active session (Databricks, notebooks), spark-submit's, or a new local one."""
    active = SparkSession.getActiveSession()
    if active is None and os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        active = SparkSession.builder.getOrCreate()  # the cluster's session
    if active is not None:
        for key, value in RUNTIME_CONF.items():
            if active.conf.get(key, None) != value:
                log.info("setting %s=%s on the active Spark session", key, value)
                active.conf.set(key, value)
        return active
    submitted = submitted_conf()
    if submitted is not None:
        log.info("joining the submitted Spark application (master %s)", submitted["spark.master"])
        spark = submitted_builder(submitted).getOrCreate()
        _load_appended_jars(spark, submitted)
        return spark
    log.info("starting a local Spark session (%s)", config.spark.master)
    # Python workers (pandas UDFs) must run this interpreter, which has seglake's packages
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = local_builder(config).getOrCreate()
    spark.sparkContext.setLogLevel(config.spark.log_level)
    return spark


# rows up to which a materialised frame is shipped whole to every task that joins it
BROADCAST_ROWS = 500_000


@dataclass(frozen=True)
class Held:
    """A materialised frame (a local checkpoint) and its row count."""

    frame: DataFrame
    rows: int

    def shipped(self) -> DataFrame:
        """The frame for the right side of a join, hinted for broadcast when small: Spark
        sizes a checkpoint by its plan's estimate, often terabytes, and would shuffle the
        other side (an 800,000-row identity map joined to a few keys)."""
        return F.broadcast(self.frame) if self.rows <= BROADCAST_ROWS else self.frame


def arrow_frame(spark: SparkSession, rows: pa.Table) -> DataFrame:
    """Arrow rows made in the driver as a Spark frame (no rows: an empty frame of their
    schema)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame(rows) if rows.num_rows else \
        spark.createDataFrame([], from_arrow_schema(rows.schema))


def held(df: DataFrame) -> Held:
    """``df`` materialised, with its row count."""
    frame = df.localCheckpoint()
    return Held(frame, frame.count())


class Deferred:
    """A Spark frame made from ``make`` when first used. Resolve's driver path keeps its rows
    as Arrow and writes them from there, so most Spark frames of them are never used (each
    costs ~0.05 s to make; ten took 0.5 s at medium); an unmade one unpersists as a no-op."""

    def __init__(self, make: Callable[[], DataFrame]) -> None:
        self._make = make
        self._frame: DataFrame | None = None

    @property
    def frame(self) -> DataFrame:
        """The frame itself, for what checks its type (Lakehouse writes)."""
        if self._frame is None:
            self._frame = self._make()
        return self._frame

    def __getattr__(self, name: str) -> object:
        if self._frame is None and name == "unpersist":
            return lambda *args, **kwargs: None
        return getattr(self.frame, name)


def made(df: DataFrame | Deferred) -> DataFrame:
    """``df`` itself, made if deferred: for what checks a frame's type (Lakehouse writes)."""
    return df.frame if isinstance(df, Deferred) else df
