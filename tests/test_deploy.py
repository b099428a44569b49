"""The Databricks Asset Bundle (databricks.yml), checked offline: one task per pipeline stage in an
order that respects what each stage reads, commands the CLI accepts, the wheel that make dist
builds, and the key from a secret scope."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

from seglake.cli import build_parser
from seglake.config import SeglakeConfig
from seglake.stages import PIPELINE, stage
from seglake.tables import registry

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text(encoding="utf-8"))
JOB = BUNDLE["resources"]["jobs"]["seglake_daily"]
TASKS = {t["task_key"]: t for t in JOB["tasks"]}


def ancestors(key: str) -> set[str]:
    found: set[str] = set()
    todo = [d["task_key"] for d in TASKS[key].get("depends_on", [])]
    while todo:
        parent = todo.pop()
        if parent not in found:
            found.add(parent)
            todo += [d["task_key"] for d in TASKS[parent].get("depends_on", [])]
    return found


def test_the_bundle_has_the_documented_top_level_keys():
    assert set(BUNDLE) <= {"bundle", "variables", "artifacts", "resources", "targets",
                           "include", "workspace", "sync", "permissions", "presets"}
    assert BUNDLE["bundle"]["name"] == "seglake"
    assert BUNDLE["targets"]["prod"]["mode"] == "production"
    assert JOB["schedule"]["quartz_cron_expression"].count(" ") == 5  # Quartz: 6 fields


def test_one_task_per_pipeline_stage_after_every_stage_it_reads_from():
    assert list(TASKS) == [s for s in PIPELINE if s != "demo"]
    reg = registry(SeglakeConfig())
    for key, task in TASKS.items():
        assert {d["task_key"] for d in task.get("depends_on", [])} <= set(TASKS)
        owners = {reg.declared(t).owner for t in stage(key).reads if "*" not in t}
        if any("*" in t for t in stage(key).reads):
            owners.add("ingest")  # bronze.*
        assert owners - {key} <= ancestors(key), f"{key} may run before {owners - ancestors(key)}"
    assert ancestors("report") == set(TASKS) - {"report"}  # the report sees every stage's tables


def test_every_task_runs_a_command_the_cli_accepts_from_the_built_wheel():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    build = BUNDLE["artifacts"]["seglake_wheel"]["build"]
    out = re.search(r"-w (\S+)", build).group(1)
    parser = build_parser()
    for key, task in TASKS.items():
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "seglake" and wheel["entry_point"] in scripts
        args = parser.parse_args(wheel["parameters"])
        assert args.command == key
        assert [lib["whl"] for lib in task["libraries"]] == [f"./{out}/*.whl"]
        assert task["job_cluster_key"] == JOB["job_clusters"][0]["job_cluster_key"]


def test_the_key_comes_from_a_secret_scope_and_no_secret_is_in_the_file():
    env = JOB["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    assert re.fullmatch(r"\{\{secrets/\$\{var\.secret_scope\}/[\w-]+\}\}",
                        env["SEGLAKE_PSEUDONYMIZATION_KEY"])
    assert all(name.startswith("SEGLAKE") for name in env)
    # the only value with "key" in its name is the reference, never a literal key
    assert [n for n in env if "KEY" in n] == ["SEGLAKE_PSEUDONYMIZATION_KEY"]
