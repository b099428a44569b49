"""``seglake run``: stage selection, the run log per stage, stopping at a failure with the
command that resumes there."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from seglake.cli import main
from seglake.declarations import RUN_LOG
from seglake.lakehouse import Lakehouse, make_backend
from seglake.pipeline import (
    STAGES,
    PipelineError,
    resume_hint,
    resume_point,
    run_stages,
    selected_stages,
)


def test_selected_stages_from_only_and_demo():
    assert selected_stages() == list(STAGES[1:])                    # demo only when asked
    assert selected_stages(demo=True) == list(STAGES)
    assert selected_stages(first="score") == ["score", "publish", "monitor", "report"]
    assert selected_stages(only="resolve") == ["resolve"]
    with pytest.raises(PipelineError, match="unknown stage 'resolv'.*resolve"):
        selected_stages(first="resolv")


def test_run_records_each_stage_and_stops_at_the_first_failure(spark, tmp_path):
    lake = Lakehouse(spark, str(tmp_path / "lakehouse"), make_backend(spark, "delta-rs"))
    ran = []

    def stage(name: str) -> int:
        ran.append(name)
        if name == "ingest":
            lake.overwrite("bronze.things", spark.range(3))
            return 0
        if name == "refine":
            lake.overwrite("silver.things", spark.range(2))
            raise RuntimeError("disk full")
        return 0

    outcomes = run_stages(lake, ["ingest", "refine", "resolve"], stage)
    assert ran == ["ingest", "refine"]                              # resolve never started
    assert [(o.stage, o.code) for o in outcomes] == [("ingest", 0), ("refine", 1)]
    assert outcomes[0].written == {"bronze.things": 0}
    assert outcomes[1].written == {"silver.things": 0}
    assert "RuntimeError: disk full" in outcomes[1].error
    assert "seglake run --from refine" in resume_hint(outcomes[1])
    rows = lake.read(RUN_LOG).where(F.col("stage") == "run").orderBy("finished_at").collect()
    assert [(r.source, r.status) for r in rows] == [("ingest", "ok"), ("refine", "failed")]
    assert "bronze.things v0" in rows[0].message and "disk full" in rows[1].message
    assert rows[0].started_at <= rows[0].finished_at <= rows[1].started_at

    assert resume_point(lake) == "refine"                          # seglake run --resume

    # a stage that returns a non-zero exit code stops the run too
    outcomes = run_stages(lake, ["features", "segment"], lambda name: 3)
    assert [(o.stage, o.code) for o in outcomes] == [("features", 3)]
    assert resume_point(lake) == "features"
    run_stages(lake, ["features", "segment"], lambda name: 0)      # then it completes
    assert resume_point(lake) is None


def test_run_command_refuses_an_unknown_stage(capsys):
    assert main(["run", "--from", "everything"]) == 2
    assert "unknown stage 'everything'" in capsys.readouterr().err
