"""The ``seglake`` command. Every stage is a subcommand; jobs/*.py call the same entry point."""

from __future__ import annotations

import argparse
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


COMMANDS: dict[str, tuple[str, Command]] = {
    "version": ("print the versions of seglake and its engines", _version),
    "config": ("print the configuration after file and environment overrides", _show_config),
    "check": ("start Spark and round-trip a table through the lakehouse", _check),
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
    return parser


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
