"""What the stage benchmarks share: a config rooted in an output folder and a demo world
brought up to a stage there (reused while it holds the same world)."""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from pyspark.sql import DataFrame

from seglake.config import SeglakeConfig
from seglake.demo import DemoSpec, generate, resolve_scale
from seglake.ingest import run_ingest
from seglake.lakehouse import Lakehouse
from seglake.refine import run_refine

RESOLVED = ("silver.customers", "silver.customers_pii", "silver.identity_map",
            "silver.identity_merges", "silver.identity_links", "silver.identity_records",
            "ops.models")


def bench_config(out: Path) -> SeglakeConfig:
    """All roots under ``out``, every core, the public demo key, seglake's default 4 GB driver
    (the medium world runs in it since 12-04: docs/benchmarks.md)."""
    return SeglakeConfig.model_validate({
        "spark": {"master": "local[*]"},
        "lakehouse": {"root": str(out / "lakehouse")}, "landing": {"root": str(out / "landing")},
        "truth": {"root": str(out / "truth")}, "reports": {"root": str(out / "reports")},
        "privacy": {"demo_mode": True}})


def world(spark, config: SeglakeConfig, spec: DemoSpec) -> bool:
    """Generate ``spec`` into the config's roots unless they hold it already (its manifest);
    True when it was generated now."""
    manifest = Path(config.truth.root) / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text())["spec"] == json.loads(
            json.dumps(asdict(spec), default=str)):
        return False
    generate(spark, spec, config.landing.root, config.truth.root, clean=True)
    return True


def landing_records(spark, config: SeglakeConfig, name: str) -> DataFrame:
    """A source's landing files as a hand-written job reads them: its format, options and
    schema, nothing else."""
    source = config.sources[name]
    return (spark.read.format(source.format).options(**source.options)
            .schema(source.columns).load(f"{config.landing.root}/{source.path}"))


def refined_world(spark, scale: str, out: Path, *, keep_resolved: bool = False,
                  days: int | None = None) -> SeglakeConfig:
    """The scale's world (``days`` observed, default by scale) generated, ingested and refined
    under ``out``; resolve's tables are dropped unless ``keep_resolved`` (a benchmark of resolve
    starts from scratch)."""
    config = bench_config(out)
    same = not world(spark, config, resolve_scale(scale, days=days))
    if not same or not (out / "lakehouse" / "silver" / "customers_raw").exists():
        run_ingest(spark, config)
        run_refine(spark, config)
        keep_resolved = False
    lakehouse = Lakehouse.from_config(spark, config)
    for table in RESOLVED if not keep_resolved else ():
        if lakehouse.exists(table):
            shutil.rmtree(lakehouse.path(table).removeprefix("file:"))
    return config


def reset_peak_rss() -> None:
    """Start a new peak of this process's resident memory (Linux: VmHWM; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since the last reset (the Python driver: pandas,
    Arrow and the DuckDB engine live here; the JVM is another process); None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")),
              None)
    return int(kb) / 1024 if kb else None
