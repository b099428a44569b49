"""The one runner of stages: ``seglake run`` (every stage in order in one Spark application),
each ``seglake <stage>`` command and ``jobs/*.py``. Each stage run is recorded in ``ops.run_log``
(stage ``run``: start, end, status, error, table versions written); a stage that writes a table
the registry gives to another stage fails; a run stops at the first failure with the command
that resumes there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from seglake.stages import PIPELINE as STAGES  # the order; "demo" runs only when asked for
from seglake.stages import STAGES as DECLARED_STAGES

if TYPE_CHECKING:  # the CLI imports STAGES without starting Spark
    from seglake.lakehouse import Lakehouse

log = logging.getLogger(__name__)



class PipelineError(ValueError):
    """A stage selection that names no stage."""


@dataclass
class StageOutcome:
    stage: str
    code: int
    seconds: float
    written: dict[str, int] = field(default_factory=dict)  # table -> version written
    error: str = ""


def selected_stages(first: str | None = None, only: str | None = None,
                    demo: bool = False, last: str | None = None) -> list[str]:
    """The stages to run: ``only`` one, or from ``first`` (default: ingest, or demo with
    ``demo``) to ``last`` (default: the end)."""
    for name in (first, only, last):
        if name is not None and name not in STAGES:
            raise PipelineError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    if only is not None:
        return [only]
    start = first or ("demo" if demo else "ingest")
    end = STAGES.index(last) + 1 if last else len(STAGES)
    if end <= STAGES.index(start):
        raise PipelineError(f"--to {last} comes before the first stage {start}")
    return list(STAGES[STAGES.index(start):end])


def resume_point(lakehouse: Lakehouse) -> str | None:
    """The stage the latest ``seglake run`` failed at, or None when it completed (or none ran)."""
    from pyspark.sql import functions as F

    from seglake.declarations import RUN_LOG

    if not lakehouse.exists(RUN_LOG):
        return None
    runs = lakehouse.read(RUN_LOG).where(F.col("stage") == "run")
    last = runs.orderBy(F.desc("finished_at"), F.desc("run_id")).first()
    return last.source if last is not None and last.status == "failed" else None


def versions(lakehouse: Lakehouse) -> dict[str, int]:
    """The version of every table: the declared ones when the lakehouse has a registry."""
    if lakehouse.registry is None:
        return {name: lakehouse.version(name) for name in lakehouse.tables()}
    return {name: lakehouse.version(name) for name in lakehouse.registry
            if lakehouse.exists(name)}


def foreign_writes(lakehouse: Lakehouse, stage: str, written: dict[str, int]) -> list[str]:
    """Tables ``stage`` wrote that the registry gives to another stage."""
    from seglake.tables import ANY_STAGE

    registry = lakehouse.registry
    declared = {s.name: s for s in DECLARED_STAGES}
    if registry is None or stage not in declared or declared[stage].writes_any:
        return []
    return sorted(t for t in written
                  if t in registry and registry[t].owner not in (stage, ANY_STAGE))


def run_stages(lakehouse: Lakehouse, stages: Sequence[str],
               run_stage: Callable[[str], int]) -> list[StageOutcome]:
    """Run ``stages`` with ``run_stage`` (the stage's exit code), recording each in
    ``ops.run_log`` as it ends; stop at the first that fails or raises."""
    from seglake.runlog import RunLog, error_summary, utc_now

    runlog = RunLog(lakehouse, "run")
    outcomes = []
    for number, stage in enumerate(stages, 1):
        log.info("run %s: stage %d/%d %s", runlog.run_id, number, len(stages), stage)
        before, started = versions(lakehouse), time.monotonic()
        runlog.started_at = utc_now()
        error = ""
        try:
            code = run_stage(stage)
        except Exception as exc:  # noqa: BLE001 - recorded and reported below
            code, error = 1, error_summary(exc)
            log.error("run %s: stage %s failed: %s", runlog.run_id, stage, error)
            log.debug("stage %s: the trace", stage, exc_info=True)
        after = versions(lakehouse)
        written = {t: v for t, v in after.items() if before.get(t) != v}
        foreign = foreign_writes(lakehouse, stage, written)
        if foreign and code == 0:
            code, error = 1, (f"stage {stage} wrote {', '.join(foreign)}, which the table "
                              "registry gives to another stage (only the owner writes a table)")
        outcome = StageOutcome(stage, code, time.monotonic() - started, written, error)
        outcomes.append(outcome)
        runlog.record(source=stage, status="ok" if code == 0 else "failed",
                      message=_message(outcome))
        runlog.flush()
        if code != 0:
            break
    return outcomes


def resume_hint(outcome: StageOutcome) -> str:
    return (f"stage {outcome.stage} failed (exit {outcome.code}"
            + (f", {outcome.error}" if outcome.error else "") + "). The stages before it are "
            "complete and every table is at a committed version. Fix the cause shown above, "
            f"then resume with: seglake run --from {outcome.stage} (or seglake run --resume)")


def _message(outcome: StageOutcome) -> str:
    tables = ", ".join(f"{t} v{v}" for t, v in sorted(outcome.written.items())) or "none"
    text = f"{outcome.seconds:.1f} s; tables written: {tables}"
    return f"{text}; error: {outcome.error}" if outcome.error else text

