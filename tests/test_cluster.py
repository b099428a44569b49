"""Runs on a cluster, proven: a Spark standalone master and one worker started from the installed
pyspark, the docs' packing and spark-submit blocks run as written, and the pipeline's tasks found
in the worker's executors with every table equal to a local run of the same world.

``make test-cluster`` (CI runs it after ``make test``); a few minutes on 2 cores."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import TEST_KEY, cached_world
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake import cli
from seglake.config import SeglakeConfig
from seglake.demo import resolve_scale
from seglake.lakehouse import Lakehouse

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
SPARK_HOME = Path(sys.modules["pyspark"].__file__).parent
# columns that hold when or by which run a row was written, not what the data says
# (times, run ids, and the run log's messages and models' artifacts, which name the run's paths)
# (and the MLflow run: the packed cluster environment has no MLflow, the local one has)
RUN_COLUMNS = re.compile(r"^_?(run_id|mlflow_run_id|batch_id|ingested_at|quarantined_at|"
                         r"resolved_at|merged_at|linked_at|started_at|finished_at|checked_at|"
                         r"trained_at|requested_at|seconds|message|artifact)$")


def documented_block(name: str) -> str:
    """The bash block of docs/operations.md marked ``<!-- tested: name ... -->``."""
    text = OPERATIONS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {name}\b[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert match, f"docs/operations.md has no tested block {name!r}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bash(script: str, env: dict[str, str], log: Path, timeout: int) -> None:
    with log.open("w") as out:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}; last lines:\n" + "\n".join(
        log.read_text(errors="replace").splitlines()[-25:])


@pytest.fixture(scope="module")
def base_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYSPARK_PYTHON", None)  # the submitted conf says which Python runs where
    env.update(SPARK_HOME=str(SPARK_HOME), SEGLAKE_ENV=str(tmp_path_factory.mktemp("env") / "v"))
    return env


@pytest.fixture(scope="module")
def packed(base_env, tmp_path_factory) -> Path:
    """dist/ with the wheel, the --py-files zip and the packed environment, built by the docs."""
    log = tmp_path_factory.mktemp("logs") / "pack.log"
    bash(documented_block("pack"), base_env, log, timeout=900)
    archive = ROOT / "dist" / "seglake-env.tar.gz"
    assert archive.is_file() and (ROOT / "dist" / "seglake.zip").is_file()
    return archive


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A master and one 2-core worker, stopped (by process group) at the end."""
    work = tmp_path_factory.mktemp("standalone")
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    commands = {
        "master": [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(ui)],
        "worker": [spark_class, "org.apache.spark.deploy.worker.Worker", "--cores", "2",
                   "--memory", "3g", "--work-dir", str(work / "work"),
                   "--webui-port", str(free_port()), url],
    }
    procs = []
    try:
        for name, command in commands.items():
            log = (work / f"{name}.log").open("w")
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
            if name == "master":
                time.sleep(2)
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as r:
                    if json.load(r).get("aliveworkers", 0) == 1:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the standalone worker did not register in 120 s"
            assert all(p.poll() is None for p in procs), "the master or the worker exited"
            time.sleep(1)
        yield url, work
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


def world_config(root: Path, landing: str, truth: str) -> SeglakeConfig:
    return SeglakeConfig.model_validate({
        "lakehouse": {"root": str(root / "lakehouse")},
        "landing": {"root": landing}, "truth": {"root": truth},
        "reports": {"root": str(root / "reports")},
        "clustering": {"starts": 3, "bootstrap_runs": 2},
    })


def write_config(config: SeglakeConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_world(spark, tmp_path_factory):
    """A 300-person, 60-day demo world (from the cache of generated worlds when there)."""
    root = tmp_path_factory.mktemp("tiny")
    spec = resolve_scale(300, days=60)
    cached_world(spark, spec, str(root / "landing"), str(root / "truth"))
    return root


@pytest.fixture(scope="module")
def submitted(standalone, packed, base_env, tiny_world, tmp_path_factory):
    """The pipeline spark-submitted to the standalone cluster with the docs' command."""
    url, work = standalone
    run = tmp_path_factory.mktemp("submitted")
    config = write_config(world_config(run, str(tiny_world / "landing"),
                                       str(tiny_world / "truth")), run / "seglake.yaml")
    conf_dir = run / "conf"
    conf_dir.mkdir()
    (run / "events").mkdir()
    (conf_dir / "spark-defaults.conf").write_text(  # one plain JSON-lines event log
        f"spark.eventLog.enabled true\nspark.eventLog.dir file://{run / 'events'}\n"
        "spark.eventLog.compress false\nspark.eventLog.rolling.enabled false\n",
        encoding="utf-8")
    env = {**base_env, "SPARK_MASTER": url, "SEGLAKE_CONFIG": str(config),
           "SPARK_CONF_DIR": str(conf_dir), "SEGLAKE_PSEUDONYMIZATION_KEY": TEST_KEY}
    started = time.time()
    bash(documented_block("standalone"), env, run / "submit.log", timeout=1500)
    print(f"\nspark-submit to the standalone cluster: {time.time() - started:.0f} s")
    logs = list((run / "events").iterdir())
    assert len(logs) == 1
    events = [json.loads(line) for line in logs[0].read_text(encoding="utf-8").splitlines()]
    return run, events, work


def test_the_pipeline_ran_in_the_workers_executors(submitted):
    run, events, work = submitted
    start = next(e for e in events if e["Event"] == "SparkListenerApplicationStart")
    assert start["App ID"].startswith("app-"), start["App ID"]  # local runs are local-*
    env = next(e for e in events if e["Event"] == "SparkListenerEnvironmentUpdate")
    assert env["Spark Properties"]["spark.master"].startswith("spark://127.0.0.1:")
    added = {e["Executor ID"] for e in events if e["Event"] == "SparkListenerExecutorAdded"}
    assert added and "driver" not in added
    tasks = Counter(e["Task Info"]["Executor ID"] for e in events
                    if e["Event"] == "SparkListenerTaskEnd")
    assert sum(tasks.values()) > 100 and set(tasks) <= added, tasks
    print(f"tasks per executor: {dict(tasks)}")
    # the executors' Python ran from the unpacked archive in the worker's application folder
    unpacked = list((work / "work").glob(f"{start['App ID']}/*/environment/bin/python"))
    assert unpacked, "no executor unpacked the environment archive"


def test_every_table_equals_the_local_run(spark, submitted, tiny_world, tmp_path_factory):
    run, _, _ = submitted
    local_root = tmp_path_factory.mktemp("local")
    local = world_config(local_root, str(tiny_world / "landing"), str(tiny_world / "truth"))
    # the same command in this test session's local Spark (a second copy of the landing files
    # would be ingested the same: landing paths are not part of any table compared)
    assert cli.main(["run", "--config", str(write_config(local, local_root / "c.yaml"))]) == 0
    cluster_lake = Lakehouse.from_config(
        spark, world_config(run, str(tiny_world / "landing"), str(tiny_world / "truth")))
    local_lake = Lakehouse.from_config(spark, local)
    names = sorted(local_lake.tables())
    assert names == sorted(cluster_lake.tables())
    different = []
    for name in names:
        ours, theirs = local_lake.read(name), cluster_lake.read(name)
        fields = [f for f in ours.schema.fields if not RUN_COLUMNS.match(f.name)
                  and not isinstance(f.dataType, T.MapType)]
        found = [differences(ours, theirs, fields, shift) for shift in (0.0, 0.5)]
        if all(found):  # a real difference shows on both grids
            different.append(f"{name}: {found[0]}")
    assert not different, f"tables that differ between the cluster and the local run: {different}"


def differences(ours, theirs, fields, shift: float) -> str:
    """Rows of either side the other lacks, floating columns compared on a 1e-9 grid moved by
    ``shift`` steps: parallel sums (Splink's parameters among them) add in thread order, so a
    match weight may differ in its last bit, and no two values 1e-12 apart straddle both grids."""
    def column(f):
        if isinstance(f.dataType, (T.DoubleType, T.FloatType)):
            return F.round(F.col(f.name) + F.lit(shift * 1e-9), 9).alias(f.name)
        return F.col(f.name)
    a, b = ours.select(*map(column, fields)), theirs.select(*map(column, fields))
    only_local = a.exceptAll(b).limit(3).collect()
    only_cluster = b.exceptAll(a).limit(3).collect()
    return f"local {only_local} cluster {only_cluster}" if only_local or only_cluster else ""


def test_the_run_log_records_the_submitted_run(spark, submitted, tiny_world):
    run, events, _ = submitted
    lake = Lakehouse.from_config(
        spark, world_config(run, str(tiny_world / "landing"), str(tiny_world / "truth")))
    runs = lake.read("ops.run_log").where(F.col("stage") == "run").collect()
    assert len({r["run_id"] for r in runs}) == 1 and {r["status"] for r in runs} == {"ok"}
    assert {r["source"] for r in runs} == {"ingest", "refine", "resolve", "features", "segment",
                                            "score", "publish", "monitor", "report"}
