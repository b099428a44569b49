"""The ``seglake`` command. Every stage is a subcommand; jobs/*.py call the same entry point."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from importlib import metadata
from typing import Any

import yaml

from seglake import __version__
from seglake.config import ConfigError, SeglakeConfig, config_reference, load_config
from seglake.pipeline import STAGES
from seglake.stages import STAGES as DECLARED_STAGES


@dataclass
class StageOptions:
    """What a stage reads from its command line; ``seglake run`` builds one per stage."""

    as_of: dt.date | None = None
    include_email: bool = False
    include_holdout: bool = False
    activated_on: dt.date | None = None
    window: int | None = None
    segment: str | None = None
    demo_command: str = "generate"
    kind: str = "rule"
    effect: list[str] | None = None
    scale: str = "small"
    seed: int | None = None
    days: int | None = None
    start: dt.date | None = None
    clean: bool = False
    outage: str | None = None
    source: list[str] | None = None
    catalogue: bool = False
    check: bool = False
    reference: bool = False
    email: str | None = None
    customer_key: str | None = None
    vacuum: bool = False
    full: bool = False

    @classmethod
    def of(cls, args: argparse.Namespace) -> StageOptions:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)
                      if hasattr(args, f.name)})


Command = Callable[[SeglakeConfig, StageOptions], int]


def _version(_: SeglakeConfig | None, __: StageOptions) -> int:
    print(f"seglake {__version__}")
    for package in ("pyspark", "delta-spark", "deltalake", "great-expectations", "splink"):
        try:
            print(f"  {package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            print(f"  {package} (not installed)")
    return 0


def _show_config(config: SeglakeConfig, args: StageOptions) -> int:
    if getattr(args, "reference", False):
        print(config_reference())
        return 0
    print(yaml.safe_dump(config.model_dump(), sort_keys=False, allow_unicode=True), end="")
    return 0


def _check(config: SeglakeConfig, _: StageOptions) -> int:
    """Check every source's mapping (before Spark), start Spark, round-trip a small table
    through the lakehouse, then map and parse a sample of each source's landing files."""
    from pyspark.sql import functions as F

    from seglake.delivery import undeclared_folders
    from seglake.lakehouse import Lakehouse
    from seglake.refine import mapping_problems, sampled_problems
    from seglake.session import get_spark

    problems = mapping_problems(config)
    for problem in problems:
        print(f"error: {problem}")
    if problems:
        return 1
    spark = get_spark(config)
    lakehouse = Lakehouse.from_config(spark, config)
    probe = spark.range(1000).withColumn("checked_at", F.current_timestamp())
    commit = lakehouse.overwrite("ops.healthcheck", probe)
    rows = lakehouse.read("ops.healthcheck").count()
    print(f"Spark {spark.version} ({spark.sparkContext.master}), Delta backend: "
          f"{lakehouse.backend.name}")
    print(f"lakehouse {lakehouse.root}: wrote ops.healthcheck version {commit.version}, "
          f"read back {rows} rows")
    failed = rows != 1000
    for folder in undeclared_folders(spark, config):
        print(f"error: landing folder {folder!r} is read by no source: declare it under "
              f"sources (path: {folder}, with its role and mapping) or move it out of "
              f"{config.landing.root}")
        failed = True
    for name, source in config.sources.items():
        sampled, found = sampled_problems(spark, config, name)
        print(f"source {name} ({source.role}): {sampled} rows sampled, "
              f"{len(found) or 'no'} finding(s)")
        for severity, problem in found:
            print(f"  {severity}: {problem}")
        failed = failed or any(severity == "error" for severity, _ in found)
    return 1 if failed else 0


def _demo(config: SeglakeConfig, args: StageOptions) -> int:
    """Generate the demo world's landing files and ground truth (or send it a campaign)."""
    from seglake.demo import DemoError, generate, resolve_scale
    from seglake.session import get_spark

    if args.demo_command == "campaign":
        return _demo_campaign(config, args)

    demo = config.demo
    try:
        spec = resolve_scale(
            args.scale, days=args.days, seed=demo.seed if args.seed is None else args.seed,
            start=args.start or demo.start, future_days=demo.future_days,
            bad_row_rate=demo.bad_row_rate, cross_system_rate=demo.cross_system_rate,
            duplicate_rate=demo.duplicate_rate, bot_rate=demo.bot_rate,
            outlier_rate=demo.outlier_rate, outage=args.outage or None)
    except DemoError as exc:
        print(f"seglake demo: {exc}", file=sys.stderr)
        return 2
    spark = get_spark(config)
    if args.days is None and not args.clean:  # a world a campaign extended keeps its days
        from dataclasses import replace

        from seglake.demo.generate import generated_days

        spec = replace(spec, days=max(spec.days, generated_days(spark, spec, config.truth.root)
                                      or 0))
    try:
        result = generate(spark, spec, config.landing.root, config.truth.root, clean=args.clean)
    except DemoError as exc:
        print(f"seglake demo: {exc}", file=sys.stderr)
        return 2
    print(f"demo world: {spec.persons:,} customers, seed {spec.seed}, {spec.days} days from "
          f"{spec.start} (+{spec.future_days} held back)")
    print(f"landing {config.landing.root}: {result.landing_files} files, "
          f"{result.total_rows:,} rows in {result.seconds:.0f} s "
          f"({result.total_rows / max(result.seconds, 1e-9):,.0f} rows/s)")
    for source, rows in sorted(result.rows.items()):
        print(f"  {source:<13} {rows:>12,} rows  {result.bad_rows.get(source, 0):>8,} bad")
    print(f"truth {config.truth.root}: persons, crm_records, landing_rows, future_orders, "
          "manifest.json")
    return 0


def _demo_campaign(config: SeglakeConfig, args: StageOptions) -> int:
    """A campaign to the latest export, and the demo world extended by its window."""
    from seglake.demo import DemoError
    from seglake.demo.campaign import parse_effects, simulate_campaign
    from seglake.lakehouse import Lakehouse
    from seglake.session import get_spark

    spark = get_spark(config)
    lakehouse = Lakehouse.from_config(spark, config)
    try:
        if not lakehouse.exists("silver.identity_map"):
            raise DemoError("silver.identity_map does not exist: run the pipeline to publish "
                            "first (the campaign goes to published customers)")
        r = simulate_campaign(spark, config.landing.root, config.truth.root,
                              config.reports.root, lakehouse.read("silver.identity_map"),
                              args.kind, parse_effects(args.effect),
                              args.days or config.activation.window_days)
    except DemoError as exc:
        print(f"seglake demo: {exc}", file=sys.stderr)
        return 2
    for segment, n in r.reached.items():
        print(f"  {r.campaign}: {n:,} consenting treatment customers of {segment} reached "
              f"(each takes the offer with probability {r.effects[segment]:.0%})")
    print(f"demo world extended to {r.world.spec.days} days: {r.window_days} days after the "
          f"activation on {r.activated_on}; {r.world.total_rows:,} landing rows "
          f"({r.world.seconds:.0f} s). Next: seglake run --from ingest --to resolve, then "
          "seglake measure")
    return 0


def _ingest(config: SeglakeConfig, args: StageOptions) -> int:
    """Landing -> bronze, each new landing file exactly once."""
    from seglake.ingest import IngestError, run_ingest
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        results = run_ingest(spark, config, args.source or None)
    except IngestError as exc:
        print(f"seglake ingest: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"  {r.source:<13} {r.batches} batch(es), {r.files_loaded:>4} files, "
              f"{r.rows_loaded:>10,} rows into bronze.{r.source}")
        for file, reason in r.files_rejected:
            print(f"    REJECTED {file}: {reason}")
    return 0


def _refine(config: SeglakeConfig, args: StageOptions) -> int:
    """Bronze -> silver with rules, quarantine, quality gates and pseudonymisation."""
    from seglake.lakehouse import Lakehouse
    from seglake.privacy import PrivacyError
    from seglake.refine import RefineError, run_refine
    from seglake.runlog import RunLog
    from seglake.session import get_spark

    spark = get_spark(config)
    runlog = RunLog(Lakehouse.from_config(spark, config), "refine")
    try:
        results = run_refine(spark, config, args.source or None, runlog=runlog)
    except PrivacyError as exc:
        return _failed("refine", exc, 2)
    except RefineError as exc:
        return _failed("refine", exc, 1)
    print(f"  {'source':<13} {'bronze':>10} {'silver':>10} {'quarantined':>12} "
          f"{'duplicates':>11}")
    for r in results:
        print(f"  {r.source:<13} {r.bronze_rows:>10,} {r.silver_rows:>10,} "
              f"{r.quarantined:>12,} {r.duplicates:>11,}")
    print(f"run {runlog.run_id}: counts in ops.run_log, checks in ops.quality_results, "
          f"Data Docs in {config.reports.root}/{runlog.run_id}/quality/")
    return 0


def _resolve(config: SeglakeConfig, args: StageOptions) -> int:
    """CRM records -> customers (Splink on Spark), stable keys, golden records, identity map."""
    from seglake.identity import ResolveError, run_resolve
    from seglake.privacy import PrivacyError
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        r = run_resolve(spark, config, full=args.full)
    except PrivacyError as exc:
        return _failed("resolve", exc, 2)
    except ResolveError as exc:
        return _failed("resolve", exc, 1)
    print(f"  CRM records        {r.records:>10,}")
    print(f"  linked             {r.mode}" + (f": {r.batch_records:,} new or changed records"
                                                 if r.batch_records is not None else ""))
    print(f"  candidate pairs    {r.candidate_pairs:>10,}")
    print(f"  matched pairs      {r.matched_pairs:>10,}")
    print(f"  CRM customers      {r.crm_customers:>10,}  ({r.records - r.crm_customers:,} "
          "duplicate records merged)")
    print(f"  all customers      {r.customers:>10,}  (with those known by email or account "
          "only)")
    print(f"  key changes        {r.merges:>10,}")  # merges, logins, splits, moves
    print(f"run {r.run_id}: model v{r.model_version} in ops.models, diagnostics in "
          f"{config.reports.root}/{r.run_id}/identity/ ({r.seconds:.0f} s)")
    return 0


def _features(config: SeglakeConfig, args: StageOptions) -> int:
    """Silver + identity map -> gold.customer_features as of a date (point in time)."""
    if args.catalogue:
        from seglake.features import catalogue_markdown

        print(catalogue_markdown(config.features))
        return 0
    from seglake.features import FeaturesError, run_features
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        r = run_features(spark, config, as_of=args.as_of)
    except FeaturesError as exc:
        return _failed("features", exc, 1)
    print(f"  as of              {r.as_of} (everything strictly before it)")
    for name, n in r.rows_in.items():
        left_out = f"  ({r.unkeyed[name]:,} with unknown identifiers left out: run "\
            "`seglake resolve`)" if r.unkeyed[name] else ""
        print(f"  {name:<18} {n:>10,} rows{left_out}")
    print(f"  customers          {r.customers:>10,}")
    print(f"  anonymous visitors {r.anonymous:>10,}")
    print(f"run {r.run_id}: {r.rows:,} rows in gold.customer_features for as_of {r.as_of} "
          f"({r.seconds:.0f} s)")
    return 0


def _segment(config: SeglakeConfig, args: StageOptions) -> int:
    """gold.customer_features -> gold.rule_segments (exclusive segments and tags by rule), then
    gold.customer_clusters and gold.cluster_profiles (MLlib clusters)."""
    from seglake.segments import SegmentError, checked_rules, run_segment

    if args.check:
        try:
            rules = checked_rules(config)
        except SegmentError as exc:
            return _failed("segment", exc, 2)
        print(f"{config.segments.rules_file}: {len(rules.segments)} segments and "
              f"{len(rules.tags)} tags, every rule valid against the feature catalogue")
        return 0
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        r = run_segment(spark, config, as_of=args.as_of)
    except SegmentError as exc:
        return _failed("segment", exc, 1)
    print(f"  {'segment':<32} {'customers':>10}")
    for name, n in sorted(r.segments.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<32} {n:>10,}")
    for name, n in sorted(r.tags.items(), key=lambda kv: -kv[1]):
        print(f"  tag {name:<28} {n:>10,}")
    c = r.clusters
    if c is not None:
        print(f"  {'cluster':<48} {'customers':>10}")
        for cluster, name in sorted(c.names.items()):
            print(f"  {cluster:>2} {name:<45} {c.sizes[cluster]:>10,}")
        scores = ", ".join(f"k={s.k} {s.silhouette:.3f}" for s in c.k_scores)
        stability = "" if c.stability_ari is None else \
            f"; adjusted Rand index vs the previous run {c.stability_ari:.3f}"
        print(f"clustering model v{c.model_version}: k={c.k} by silhouette ({scores})"
              f"{stability}")
    print(f"run {r.run_id}: {r.rows:,} rows in gold.rule_segments for as_of {r.as_of} "
          f"({r.seconds:.0f} s)")
    return 0


def _score(config: SeglakeConfig, args: StageOptions) -> int:
    """gold.customer_features -> gold.customer_scores: propensity and churn, with tiers."""
    from seglake.scoring import ScoreError, run_score
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        r = run_score(spark, config, as_of=args.as_of)
    except ScoreError as exc:
        return _failed("score", exc, 1)
    print(f"  {'model':<11} {'family':<14} {'version':>7} {'labelled':>9} {'positive':>9} "
          f"{'ROC-AUC':>8} {'PR-AUC':>7} {'F1':>6} {'top-decile lift':>16}")
    for kind, m in r.models.items():
        ordered = sorted(m.metrics["candidates"], key=lambda c: not c["champion"])
        for c in ordered:
            lift = "" if c["top_decile_lift"] is None else f"{c['top_decile_lift']:.2f}"
            print(f"  {kind if c['champion'] else '':<11} "
                  f"{c['family'] + (' *' if c['champion'] else ''):<14} "
                  f"{m.version if c['champion'] else '':>7} "
                  f"{m.trained_on if c['champion'] else '':>9} "
                  f"{m.positives if c['champion'] else '':>9} {c['roc_auc']:>8.3f} "
                  f"{c['pr_auc']:>7.3f} {c['f1']:>6.3f} {lift:>16}")
    print(f"  * champion by holdout {config.scoring.champion_metric}: it scores")
    for kind, tiers in r.tiers.items():
        print(f"  {kind} tiers: " + ", ".join(f"{t} {tiers.get(t, 0):,}"
                                              for t in config.scoring.tiers))
    print(f"run {r.run_id}: {r.rows:,} customers scored in gold.customer_scores as of {r.as_of} "
          f"(trained on features as of {r.trained_as_of}, holdout metrics above; "
          f"{r.seconds:.0f} s)")
    return 0


def _publish(config: SeglakeConfig, args: StageOptions) -> int:
    """Segments, clusters and scores -> the published gold tables and the exports."""
    from seglake.publish import PublishError, run_publish
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        r = run_publish(spark, config, as_of=args.as_of, include_email=args.include_email,
                        include_holdout=args.include_holdout)
    except PublishError as exc:
        return _failed("publish", exc, 1)
    since = f"since {r.previous_as_of}" if r.previous_as_of else "(first publish)"
    print(f"  {r.customers:,} customers, {r.memberships:,} segment memberships; {r.entered:,} "
          f"entered and {r.left:,} left {since}")
    print(f"  {r.holdouts:,} memberships in holdout groups (gold.segment_assignments)")
    for kind, n in r.exported.items():
        print(f"  exported {kind}: {n:,} memberships of consenting customers"
              + (" (treatment and holdout)" if args.include_holdout else " (treatment only)"))
    print(f"run {r.run_id}: gold.customer_segments, gold.segment_membership, "
          f"gold.segment_changes, gold.segment_summary as of {r.as_of}; exports in "
          f"{r.export_root}" + (" (WITH email addresses)" if args.include_email else "")
          + f" ({r.seconds:.0f} s)")
    return 0


def _monitor(config: SeglakeConfig, _: StageOptions) -> int:
    """Volumes, quarantine, drift, segment sizes -> ops.alerts; 1 when one fails."""
    from seglake.monitor import run_monitor
    from seglake.session import get_spark

    r = run_monitor(get_spark(config), config)
    checked = ", ".join(f"{k} {v}" for k, v in sorted(r.checked.items()))
    print(f"  checked: {checked or 'nothing yet'}")
    for a in r.alerts:
        print(f"  {a.severity:<5} {a.check:<14} {a.message}")
    fails = sum(a.severity == "fail" for a in r.alerts)
    print(f"run {r.run_id}: {len(r.alerts)} alert(s) in ops.alerts, {fails} failing "
          f"({r.seconds:.0f} s)")
    return 1 if fails else 0


def _measure(config: SeglakeConfig, args: StageOptions) -> int:
    """Treatment against holdout after an activation date -> gold.segment_lift."""
    from seglake.measure import MeasureError, run_measure
    from seglake.session import get_spark

    try:
        r = run_measure(get_spark(config), config, activated_on=args.activated_on,
                        window_days=args.window, segment=args.segment)
    except MeasureError as exc:
        return _failed("measure", exc, 1)
    print(f"  activated on {r.activated_on} (groups as of {r.assigned_as_of}), "
          f"{r.window_days} day(s) of outcomes"
          + ("" if r.window_days >= r.requested_days else
             f" (of {r.requested_days} asked: the data ends there)"))
    print(f"  {'kind':<8} {'segment':<30} {'metric':<22} {'n T/H':>13} {'difference':>11} "
          f"{'interval':>22} {'p':>6}")
    shown = r.rows if args.segment else [x for x in r.rows if x["kind"] in ("rule", "cluster")]
    for x in shown:
        interval = ("" if x["ci_low"] is None else
                    f"[{x['ci_low']:+.4f}, {x['ci_high']:+.4f}]")
        difference = "" if x["difference"] is None else f"{x['difference']:+.4f}"
        p = "" if x["p_value"] is None else f"{x['p_value']:.3f}"
        print(f"  {x['kind']:<8} {x['segment'][:30]:<30} {x['metric']:<22} "
              f"{x['n_treatment']:>6,}/{x['n_holdout']:<6,} {difference:>11} {interval:>22} "
              f"{p:>6}")
    for u in r.uplift:
        versus = "" if u.qini_propensity is None else \
            f", ranking by propensity {u.qini_propensity:+.4f}"
        print(f"  uplift model v{u.version} of {u.kind}:{u.segment} ({u.n_treatment:,}/"
              f"{u.n_holdout:,}): Qini {u.qini:+.4f}{versus}; {u.scored:,} members scored "
              f"as of {u.scored_as_of} into gold.customer_uplift")
    print(f"run {r.run_id}: {len(r.rows)} rows in gold.segment_lift"
          + ("" if len(shown) == len(r.rows) else " (rule segments and clusters shown)")
          + f" ({r.seconds:.0f} s)")
    return 0


def _report(config: SeglakeConfig, _: StageOptions) -> int:
    """The lakehouse as one self-contained HTML report."""
    from seglake.report import ReportError, run_report
    from seglake.session import get_spark

    try:
        r = run_report(get_spark(config), config)
    except ReportError as exc:
        return _failed("report", exc, 1)
    print(f"run {r.run_id}: {len(r.sections)} sections, {r.figures} figures "
          f"({r.seconds:.0f} s)")
    print(f"report: {os.path.abspath(r.path)}")
    return 0


def _run(config: SeglakeConfig, args: argparse.Namespace) -> int:
    """Every stage in order in this one Spark application (``--from`` / ``--only``)."""
    from seglake.lakehouse import Lakehouse
    from seglake.pipeline import (
        PipelineError,
        resume_hint,
        resume_point,
        run_stages,
        selected_stages,
    )
    from seglake.session import get_spark

    first = args.from_stage
    if args.resume:
        first = resume_point(Lakehouse.from_config(get_spark(config), config))
        if first is None:
            print("run: the latest run did not fail; nothing to resume", file=sys.stderr)
            return 0
        print(f"run: resuming at {first}, where the latest run failed")
    try:
        stages = selected_stages(first, args.only, args.demo, args.to_stage)
    except PipelineError as exc:
        return _failed("run", exc, 2)

    def run_stage(stage: str) -> int:
        options = StageOptions(scale=args.scale)
        if args.as_of is not None and stage in AS_OF_HELP:
            options.as_of = args.as_of
        options.include_email = args.include_email and stage == "publish"
        options.include_holdout = args.include_holdout and stage == "publish"
        options.full = args.full and stage == "resolve"
        print(f"== seglake {stage}", flush=True)
        return _HANDLERS[stage](config, options)

    started = time.monotonic()
    outcomes = run_stages(Lakehouse.from_config(get_spark(config), config), stages, run_stage)
    print(f"  {'stage':<10} {'status':<7} {'seconds':>8}  tables written")
    for o in outcomes:
        print(f"  {o.stage:<10} {'ok' if o.code == 0 else 'FAILED':<7} {o.seconds:>8.0f}  "
              + (", ".join(sorted(o.written)) or "-"))
    if outcomes and outcomes[-1].code != 0:
        return _failed("run", resume_hint(outcomes[-1]), outcomes[-1].code)
    _print_segment_summary(Lakehouse.from_config(get_spark(config), config))
    print(f"run: {len(outcomes)} stage(s) in {time.monotonic() - started:.0f} s, recorded in "
          "ops.run_log (stage 'run')")
    if "report" in stages:
        from seglake.report import latest_report

        print(f"report: {os.path.abspath(latest_report(config.reports.root))}")
    return 0


def _print_segment_summary(lakehouse) -> None:
    """The published rule segments and clusters of the latest as_of, largest first."""
    if not lakehouse.exists("gold.segment_summary"):
        return
    from pyspark.sql import functions as F

    summary = lakehouse.read("gold.segment_summary")
    as_of = summary.agg(F.max("as_of")).first()[0]
    rows = summary.where((F.col("as_of") == as_of) & F.col("kind").isin("rule", "cluster")
                         & (F.col("customers") > 0)) \
        .orderBy(F.desc("kind"), F.desc("customers")).collect()
    print(f"segments as of {as_of}:")
    print(f"  {'kind':<8} {'segment':<42} {'customers':>10} {'share':>7} {'revenue':>8} "
          f"{'consenting':>11}")
    for r in rows:
        print(f"  {r.kind:<8} {r.segment:<42} {r.customers:>10,} {r.share:>7.1%} "
              f"{r.revenue_share:>8.1%} {r.consenting:>11,}")


def _register(config: SeglakeConfig, args: argparse.Namespace) -> int:
    """The GDPR record of processing from the registry and the configuration (no Spark)."""
    from seglake.register import write_register

    folder = args.out or f"{config.reports.root.rstrip('/')}/register"
    md, js = write_register(config, folder)
    print(f"record of processing activities: {md} and {js}")
    return 0


def _tables(config: SeglakeConfig, args: argparse.Namespace) -> int:
    """The registry; with rows and version of each table that exists (Spark only then)."""
    from seglake.tables import reference_markdown, registry

    reg = registry(config)
    if args.markdown:
        print(reference_markdown(reg), end="")
        return 0
    found: dict[str, tuple[int, int]] = {}
    if not args.no_spark:
        from seglake.lakehouse import Lakehouse
        from seglake.session import get_spark

        lakehouse = Lakehouse.from_config(get_spark(config), config, reg)
        found = {name: (lakehouse.version(name), lakehouse.read(name).count())
                 for name in reg if lakehouse.exists(name)}
    print(f"  {'table':<28} {'owner':<9} {'PII':<13} {'partitioned by':<15} {'version':>7} "
          f"{'rows':>11}")
    for name, t in reg.items():
        version, rows = found.get(name, (None, None))
        print(f"  {name:<28} {t.owner:<9} {t.pii:<13} {','.join(t.partition_by) or '-':<15} "
              f"{'-' if version is None else version:>7} "
              f"{'-' if rows is None else format(rows, ','):>11}")
    return 0


def _failed(stage: str, exc: Exception | str, code: int) -> int:
    """Print a stage's error as ``seglake <stage>: <message>`` and return the exit code."""
    print(f"seglake {stage}: {exc}", file=sys.stderr)
    return code


def _erase(config: SeglakeConfig, args: StageOptions) -> int:
    """Delete one data subject from every table (and, with --vacuum, from old versions)."""
    from seglake.erasure import ErasureError, erase
    from seglake.privacy import PrivacyError
    from seglake.session import get_spark

    spark = get_spark(config)
    try:
        result = erase(spark, config, email=args.email, customer_key=args.customer_key,
                       vacuum=args.vacuum)
    except (ErasureError, PrivacyError) as exc:
        return _failed("erase", exc, 2)
    print(f"erasure {result.request_id} (subject {result.subject_hash[:12]}...): "
          f"{sum(result.rows_deleted.values()):,} rows deleted")
    for table, rows in sorted(result.rows_deleted.items()):
        print(f"  {table:<24} {rows:>8,}")
    print("old versions vacuumed: " + (", ".join(result.vacuumed) if result.vacuumed
                                        else "no (run with --vacuum to make it final)"))
    if result.released:
        print(f"{result.released:,} CRM records of other identifiers shared a customer with "
              f"the subject ({', '.join(result.shared_keys)}): kept; the next `seglake "
              "resolve` re-links them (erase with --customer-key first if they are the "
              "subject's too)")
    if result.landing_files:
        print("landing files that still hold the subject (remove it there):")
        for file in result.landing_files:
            print(f"  {file}")
    return 0


_HANDLERS: dict[str, Command] = {
    "demo": _demo, "ingest": _ingest, "refine": _refine, "resolve": _resolve,
    "features": _features, "segment": _segment, "score": _score, "publish": _publish,
    "measure": _measure, "monitor": _monitor, "report": _report, "erase": _erase,
}
COMMANDS: dict[str, tuple[str, Callable[[SeglakeConfig, Any], int]]] = {
    "version": ("print the versions of seglake and its engines", _version),
    "config": ("print the configuration after file and environment overrides", _show_config),
    "check": ("check every source's mapping, round-trip a table through the lakehouse and "
              "map a sample of each source's files", _check),
    **{s.name: (s.summary, _HANDLERS[s.name]) for s in DECLARED_STAGES},
    "tables": ("the table registry: every table, its owner, PII class and partitioning "
               "(--markdown: the docs reference)", _tables),
    "run": ("every stage in order in one Spark application (--from STAGE / --only STAGE)",
            _run),
    "register": ("the GDPR record of processing activities (Markdown and JSON) from the "
                 "table registry and the configuration", _register),
}
AS_OF_HELP = {**{s.name: s.as_of for s in DECLARED_STAGES if s.as_of},
              "run": "passed to features, segment, score and publish"}


def _common(default: object) -> argparse.ArgumentParser:
    """--config and --verbose, accepted before and after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=default,
                        help="YAML config (default: conf/seglake.yaml when present)")
    common.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log debug detail")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglake", parents=[_common(None)],
        description="Behavioral customer segmentation on a Spark + Delta Lake lakehouse.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {
        name: sub.add_parser(name, parents=[_common(argparse.SUPPRESS)], help=help_text,
                             description=help_text)
        for name, (help_text, _) in COMMANDS.items()
    }
    commands["config"].add_argument(
        "--reference", action="store_true",
        help="print the reference of every key (Markdown, as in docs/configuration.md)")
    for name in ("ingest", "refine"):
        commands[name].add_argument("--source", action="append", metavar="NAME",
                                    help="only this declared source (repeatable)")
    for name, text in AS_OF_HELP.items():
        commands[name].add_argument("--as-of", type=_date, metavar="DATE", help=text)
    commands["features"].add_argument(
        "--catalogue", action="store_true",
        help="print the feature catalogue (Markdown, as in docs/features.md) and exit")
    commands["tables"].add_argument(
        "--markdown", action="store_true",
        help="print the table reference (Markdown, as in docs/tables.md) and exit")
    commands["tables"].add_argument(
        "--no-spark", action="store_true",
        help="only the declarations: do not start Spark to count rows")
    commands["register"].add_argument(
        "--out", metavar="DIR", help="folder of register.md and register.json (default: "
        "<reports.root>/register)")
    commands["segment"].add_argument(
        "--check", action="store_true",
        help="only check the rules file against the feature catalogue (no Spark)")
    for name in ("resolve", "run"):
        commands[name].add_argument(
            "--full", action="store_true",
            help="re-link every CRM record (retraining unless identity.reuse_model) instead of "
                 "only the new and changed ones")
    for name in ("publish", "run"):
        commands[name].add_argument(
            "--include-email", action="store_true",
            help="put email addresses in the exports (still consenting customers only; logged)")
        commands[name].add_argument(
            "--include-holdout", action="store_true",
            help="export the holdout groups too, with a group column (logged)")
    measure = commands["measure"]
    measure.add_argument("--activated-on", type=_date, metavar="DATE",
                         help="the day the campaign went out; the groups are the latest "
                         "assignments on or before it (default: the latest as_of with outcomes "
                         "after it)")
    measure.add_argument("--window", type=int, metavar="DAYS",
                         help="days of outcomes after it (default: activation.window_days)")
    measure.add_argument("--segment", metavar="[KIND:]NAME",
                         help="only this segment (default: every segment)")
    run = commands["run"]
    run.add_argument("--from", dest="from_stage", metavar="STAGE",
                     help="start at this stage (" + ", ".join(STAGES) + ")")
    run.add_argument("--to", dest="to_stage", metavar="STAGE",
                     help="stop after this stage")
    run.add_argument("--only", metavar="STAGE", help="run this one stage")
    run.add_argument("--resume", action="store_true",
                     help="start at the stage where the latest run failed (from ops.run_log)")
    run.add_argument("--demo", action="store_true",
                     help="first generate the demo world (demo generate --scale SCALE)")
    run.add_argument("--scale", default="small", help="demo scale with --demo (default: small)")
    who = commands["erase"].add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the subject's email address (any spelling or case)")
    who.add_argument("--customer-key", help="the subject's customer_key (after resolve)")
    commands["erase"].add_argument(
        "--vacuum", action="store_true",
        help="also delete old table files at once, so time travel cannot bring the subject back")
    demo = commands["demo"].add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    generate = demo.add_parser(
        "generate", parents=[_common(argparse.SUPPRESS)],
        help="write daily landing files and ground truth for a synthetic French retailer",
        description="Write daily landing files (landing.root) and ground truth (truth.root). "
        "Same seed, scale and start give byte-identical files; more --days extend the "
        "same world.")
    generate.add_argument("--scale", default="small",
                          help="small (~2,000 customers, 90 days), medium (~100,000, 365 days), "
                          "large (~1,000,000, 365 days) or a number of customers")
    generate.add_argument("--seed", type=int, help="world seed (default: demo.seed)")
    generate.add_argument("--days", type=int, help="observed days (default: by scale)")
    generate.add_argument("--start", type=_date, help="first observed day, YYYY-MM-DD "
                          "(default: demo.start)")
    generate.add_argument("--outage", metavar="FIRST[:LAST][=SHARE]",
                          help="a tracking outage: the app loses SHARE (default 0.7) of its "
                          "events from FIRST to LAST (dates) in the landing files generated now "
                          "(files already ingested are not read again); what `seglake monitor` "
                          "should catch")
    generate.add_argument("--clean", action="store_true",
                          help="empty the landing and truth roots first (another world there)")
    campaign = demo.add_parser(
        "campaign", parents=[_common(argparse.SUPPRESS)],
        help="send the latest export a campaign and extend the world by its window",
        description="The marketing side of the demo: the consenting treatment members of the "
        "latest export of --kind get an offer, each takes it with the segment's --effect "
        "probability, and the world lives --days more days (ground truth of the effect in the "
        "truth root). Then ingest, refine and resolve the new days and run seglake measure.")
    campaign.add_argument("--kind", default="rule", help="the export kind (default: rule)")
    campaign.add_argument("--effect", action="append", metavar="SEGMENT=EFFECT",
                          help="a segment sent the offer and the chance a reached customer "
                          "takes it (repeatable; default: the largest segment, 0.5)")
    campaign.add_argument("--days", type=int,
                          help="days after the activation (default: activation.window_days)")
    return parser


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _, command = COMMANDS[args.command]
    if args.command == "version":
        return command(None, args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"seglake: {exc}", file=sys.stderr)
        return 2
    if args.command in ("run", "tables", "register"):
        return command(config, args)
    options = StageOptions.of(args)
    problem = _argument_problem(config, args.command, options)
    if problem:  # before Spark starts: a typo costs a second, not a JVM start
        print(f"seglake {args.command}: {problem}", file=sys.stderr)
        return 2
    if args.command in _HANDLERS and not (options.catalogue or options.check):
        return _staged(config, args.command, options)
    return command(config, options)


def _argument_problem(config: SeglakeConfig, command: str, options: StageOptions) -> str:
    """What is wrong with the command line given the configuration ('' when nothing)."""
    unknown = [s for s in options.source or [] if s not in config.sources]
    if unknown:
        return (f"unknown source(s) {unknown}; declared in the configuration: "
                f"{', '.join(config.sources)}")
    if command == "measure" and options.window is not None and not 1 <= options.window <= 365:
        return f"--window must be between 1 and 365 days (got {options.window})"
    if command == "erase":
        if bool(options.email) == bool(options.customer_key):
            return "give exactly one of --email or --customer-key"
        if options.email and not re.fullmatch(r"\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*",
                                              options.email):
            return f"not an email address: {options.email!r}"
    return ""


def _staged(config: SeglakeConfig, stage: str, options: StageOptions) -> int:
    """One stage through the runner: session, run log, ownership of what it writes."""
    from seglake.lakehouse import Lakehouse
    from seglake.pipeline import run_stages
    from seglake.session import get_spark

    lakehouse = Lakehouse.from_config(get_spark(config), config)
    outcome = run_stages(lakehouse, [stage], lambda name: _HANDLERS[name](config, options))[0]
    if outcome.error:
        return _failed(stage, outcome.error, outcome.code)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
