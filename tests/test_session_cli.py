"""The Spark session seglake builds, and the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seglake import __version__, cli
from seglake.config import SeglakeConfig
from seglake.session import get_spark, local_builder, packaged_jars


def test_active_session_is_reused(spark, config):
    assert get_spark(config) is spark


def test_local_session_settings(spark):
    conf = spark.conf
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"
    assert conf.get("spark.sql.adaptive.enabled") == "false"  # the test config's choice
    assert conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.sparkContext.master == "local[2]"


def test_shuffle_partitions_follow_the_data_size_unless_set():
    def options(**spark: object) -> dict:
        return local_builder(SeglakeConfig.model_validate({"spark": spark}))._options

    default = options(master="local[3]")
    assert "spark.sql.shuffle.partitions" not in default  # Spark's 200, coalesced by size
    assert default["spark.sql.adaptive.coalescePartitions.enabled"] == "true"
    assert default["spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"] == "true"
    # 200 partitions of small data: one sorted file per map task, not one file per partition
    assert default["spark.shuffle.sort.bypassMergeThreshold"] == "1"
    chosen = options(master="local[3]", shuffle_partitions=12)
    assert chosen["spark.sql.shuffle.partitions"] == "12"
    # a count the user chose is not coalesced behind their back
    assert "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning" not in chosen
    assert "spark.shuffle.sort.bypassMergeThreshold" not in chosen
    # adaptive execution is on unless the conf says otherwise
    assert default["spark.sql.adaptive.enabled"] == "true"
    assert options(conf={"spark.sql.adaptive.enabled": "false"})[
        "spark.sql.adaptive.enabled"] == "false"


def test_packaged_splink_jar_is_on_the_session(spark):
    jars = packaged_jars()
    assert any(os.path.basename(j).startswith("scala-udf-similarity") for j in jars)
    assert all(os.path.isfile(j) for j in jars)
    assert set(jars) <= set(spark.conf.get("spark.jars").split(","))
    # the JVM really loaded it: splink's Jaro-Winkler UDF class resolves
    spark._jvm.java.lang.Class.forName(
        "uk.gov.moj.dash.linkage.JaroWinklerSimilarity", True,
        spark._jvm.Thread.currentThread().getContextClassLoader())


def test_active_session_gets_the_runtime_settings(spark, config):
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    try:
        active = get_spark(config).conf
        assert active.get("spark.sql.session.timeZone") == "UTC"
        assert active.get("spark.sql.adaptive.enabled") == "true"  # its own choice, kept
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        spark.conf.set("spark.sql.adaptive.enabled", "false")


def test_version_command(capsys):
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out
    assert f"seglake {__version__}" in out and "pyspark 4.2.0" in out


def test_config_command_prints_the_overridden_config(monkeypatch, capsys):
    monkeypatch.setenv("SEGLAKE__LAKEHOUSE__ROOT", "/tmp/elsewhere")
    assert cli.main(["config"]) == 0
    assert "root: /tmp/elsewhere" in capsys.readouterr().out


def test_check_round_trips_through_the_lakehouse(spark, config: SeglakeConfig, capsys,
                                                 monkeypatch, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"lakehouse:\n  root: {tmp_path / 'lh'}\nlanding:\n  root: {tmp_path}\n",
                    encoding="utf-8")
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Delta backend: delta-" in out and "read back 1000 rows" in out
    assert f"warning: orders: no files delivered yet under {tmp_path}/orders" in out
    assert (tmp_path / "lh" / "ops" / "healthcheck" / "_delta_log").is_dir()


def test_help_lists_the_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for command in ("version", "config", "check"):
        assert command in out


ROOT = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(sys.modules["pyspark"].__file__).parent


def test_a_submitted_session_keeps_its_master_name_and_jars(tmp_path):
    """spark-submit's master, name and jars are kept; seglake's jar is appended, its UTC set."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json\nfrom seglake.config import SeglakeConfig\n"
        "from seglake.session import get_spark\n"
        "spark = get_spark(SeglakeConfig.model_validate({'spark': {'master': 'local[1]'}}))\n"
        "sc = spark.sparkContext\n"
        "print('PROBE ' + json.dumps({'master': sc.master, 'name': sc.appName,\n"
        "  'jars': spark.conf.get('spark.jars'),\n"
        "  'tz': spark.conf.get('spark.sql.session.timeZone'),\n"
        "  'jw': spark.sql(\"SELECT jaro_winkler('martha', 'marhta')\").first()[0]\n"
        "    if spark.udf.registerJavaFunction('jaro_winkler',\n"
        "      'uk.gov.moj.dash.linkage.JaroWinklerSimilarity', 'double') is None else None}))\n",
        encoding="utf-8")
    extra = tmp_path / "extra.jar"
    shutil.copy(next((SPARK_HOME / "jars").glob("commons-lang3-*.jar")), extra)
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYSPARK_PYTHON", None)
    done = subprocess.run(
        [str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]", "--name", "probe-app",
         "--jars", str(extra), "--conf", "spark.ui.enabled=false",
         "--conf", f"spark.pyspark.python={sys.executable}", str(probe)],
        env=env, capture_output=True, text=True, timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line, done.stderr[-3000:]
    found = json.loads(line.removeprefix("PROBE "))
    assert found["master"] == "local[2]" and found["name"] == "probe-app"  # not seglake's
    jars = found["jars"].split(",")
    assert jars[0].endswith("extra.jar")
    assert any("scala-udf-similarity" in j for j in jars[1:])
    assert found["tz"] == "UTC"
    assert found["jw"] == pytest.approx(0.9611, abs=1e-3)  # the driver loads the appended jar
