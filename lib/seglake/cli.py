"""The ``seglake`` command. Every stage is a subcommand; jobs/*.py call the same entry point."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

import yaml

from seglake import __version__
from seglake.config import ConfigError, SeglakeConfig, config_reference, load_config

Command = Callable[[SeglakeConfig, argparse.Namespace], int]


def _version(_: SeglakeConfig | None, __: argparse.Namespace) -> int:
    print(f"seglake {__version__}")
    for package in ("pyspark", "delta-spark", "deltalake", "great-expectations", "splink"):
        try:
            print(f"  {package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            print(f"  {package} (not installed)")
    return 0


def _show_config(config: SeglakeConfig, args: argparse.Namespace) -> int:
    if getattr(args, "reference", False):
        print(config_reference())
        return 0
    print(yaml.safe_dump(config.model_dump(), sort_keys=False, allow_unicode=True), end="")
    return 0


def _check(config: SeglakeConfig, _: argparse.Namespace) -> int:
    """Start Spark, pick the Delta backend, and round-trip a small table through the lakehouse."""
    from pyspark.sql import functions as F

    from seglake.lakehouse import Lakehouse
    from seglake.session import get_spark

    spark = get_spark(config)
    lakehouse = Lakehouse.from_config(spark, config)
    probe = spark.range(1000).withColumn("checked_at", F.current_timestamp())
    commit = lakehouse.overwrite("ops.healthcheck", probe)
    rows = lakehouse.read("ops.healthcheck").count()
    print(f"Spark {spark.version} ({spark.sparkContext.master}), Delta backend: "
          f"{lakehouse.backend.name}")
    print(f"lakehouse {lakehouse.root}: wrote ops.healthcheck version {commit.version}, "
          f"read back {rows} rows")
    return 0 if rows == 1000 else 1


def _demo(config: SeglakeConfig, args: argparse.Namespace) -> int:
    """Generate the demo world's landing files and ground truth."""
    from seglake.demo import DemoError, generate, resolve_scale
    from seglake.session import get_spark

    demo = config.demo
    try:
        spec = resolve_scale(
            args.scale, days=args.days, seed=demo.seed if args.seed is None else args.seed,
            start=args.start or demo.start, future_days=demo.future_days,
            bad_row_rate=demo.bad_row_rate, cross_system_rate=demo.cross_system_rate,
            duplicate_rate=demo.duplicate_rate)
    except DemoError as exc:
        print(f"seglake demo: {exc}", file=sys.stderr)
        return 2
    spark = get_spark(config)
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


COMMANDS: dict[str, tuple[str, Command]] = {
    "version": ("print the versions of seglake and its engines", _version),
    "config": ("print the configuration after file and environment overrides", _show_config),
    "check": ("start Spark and round-trip a table through the lakehouse", _check),
    "demo": ("generate demo landing files with ground truth (demo generate ...)", _demo),
}


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
        help="print the reference of every key (Markdown, as in the README)")
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
    generate.add_argument("--clean", action="store_true",
                          help="empty the landing and truth roots first (another world there)")
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
    logging.getLogger("py4j").setLevel(logging.WARNING)
    _, command = COMMANDS[args.command]
    if args.command == "version":
        return command(None, args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"seglake: {exc}", file=sys.stderr)
        return 2
    return command(config, args)


if __name__ == "__main__":
    sys.exit(main())
