"""Quality gates: each silver table's declared expectations, run on the candidate rows before
they are committed. A blocking suite that fails stops the write (the table keeps its version);
a warning suite only records. Results go to ``ops.quality_results`` and GX Data Docs to
``<run report>/quality/``.

The expectations are Great Expectations' (``suites`` gives them as GX objects), measured with
GX's semantics in one Spark aggregation per candidate — all batches of it at once — rather
than GX's three or so Spark jobs per expectation; GX then renders the Data Docs from those
results. A test holds the measures equal to GX's own validation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from seglake.config import QualityConfig
from seglake.declarations import QUALITY_RESULTS, declared
from seglake.lakehouse import Lakehouse
from seglake.lakehouse.schema import arrow_rows
from seglake.tables import Expectation, Registry, registry

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)

# GX's name of each kind of expectation the registry declares
GX_TYPES = {"not_null": "expect_column_values_to_not_be_null",
            "unique": "expect_column_values_to_be_unique",
            "unique_together": "expect_compound_columns_to_be_unique",
            "in_set": "expect_column_values_to_be_in_set",
            "between": "expect_column_values_to_be_between",
            "regex": "expect_column_values_to_match_regex"}
EXAMPLES = 20  # unexpected values kept per failed expectation, as GX's partial list


class QualityError(RuntimeError):
    """A blocking suite failed: the candidate was not committed."""


def rules(reg: Registry | None = None) -> dict[str, list[Expectation]]:
    """The declared expectations of each silver table that has any."""
    reg = reg if reg is not None else registry()
    return {name: table.all_expectations() for name, table in reg.items()
            if table.layer == "silver" and table.all_expectations()}


def gx_expectation(e: Expectation) -> Any:
    """The GX expectation a declared one stands for."""
    import great_expectations.expectations as gxe

    options = dict(e.options)
    if e.kind == "unique_together":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(e.columns), **options)
    kind = {"not_null": gxe.ExpectColumnValuesToNotBeNull,
            "unique": gxe.ExpectColumnValuesToBeUnique,
            "in_set": gxe.ExpectColumnValuesToBeInSet,
            "between": gxe.ExpectColumnValuesToBeBetween,
            "regex": gxe.ExpectColumnValuesToMatchRegex}[e.kind]
    return kind(column=e.columns[0], **options)


def suites(reg: Registry | None = None) -> dict[str, list[Any]]:
    """The GX suite of each silver table, from the registry's expectations."""
    return {name: [gx_expectation(e) for e in found] for name, found in rules(reg).items()}


@dataclass(frozen=True)
class Measure:
    """One expectation over one candidate, in GX's terms (``considered``: the rows it judges,
    all for not-null, the rows with values for the others)."""

    rule: Expectation
    element_count: int
    considered: int
    unexpected_count: int
    examples: tuple[Any, ...] = ()

    @property
    def success(self) -> bool:
        """GX's rule: vacuously true on no rows, else the expected share reaches ``mostly``."""
        if self.element_count == 0 or self.considered == 0:
            return True
        mostly = float(dict(self.rule.options).get("mostly", 1.0))
        return (self.considered - self.unexpected_count) / self.considered >= mostly

    @property
    def unexpected_percent(self) -> float | None:
        return 100.0 * self.unexpected_count / self.considered if self.considered else None

    @property
    def column(self) -> str:
        return ",".join(self.rule.columns)

    @property
    def expectation(self) -> str:
        """GX's name of the expectation."""
        return GX_TYPES[self.rule.kind]

    def summary(self) -> dict[str, Any]:
        """GX's SUMMARY result of this measure."""
        return {"element_count": self.element_count,
                "missing_count": self.element_count - self.considered
                if self.rule.kind != "not_null" else 0,
                "unexpected_count": self.unexpected_count,
                "unexpected_percent": self.unexpected_percent,
                "partial_unexpected_list": list(self.examples)}


def _judged(e: Expectation, by: Sequence[str]) -> tuple[Column, Column]:
    """(row is considered, row is unexpected) for one expectation, as GX's Spark engine."""
    options = dict(e.options)
    cols = [F.col(c) for c in e.columns]
    if e.kind == "not_null":
        return F.lit(True), cols[0].isNull()
    if e.kind in ("unique", "unique_together"):
        ignore = options.get("ignore_row_if", "all_values_are_missing")
        present = [c.isNotNull() for c in cols]
        if len(cols) == 1:
            considered = present[0]
        elif ignore == "never":
            considered = F.lit(True)
        elif ignore == "any_value_is_missing":
            considered = reduce(operator.and_, present)
        else:  # all_values_are_missing
            considered = reduce(operator.or_, present)
        # duplicates among the considered rows only (GX filters the others out first)
        group = Window.partitionBy(*by, considered, *cols)
        return considered, F.count(F.lit(1)).over(group) > 1
    value = cols[0]
    if e.kind == "in_set":
        return value.isNotNull(), ~value.isin(list(options["value_set"]))
    if e.kind == "regex":
        return value.isNotNull(), ~value.rlike(options["regex"])
    if e.kind == "between":
        inside = F.lit(True)
        if options.get("min_value") is not None:
            low = F.lit(options["min_value"])
            inside = inside & (value > low if options.get("strict_min") else value >= low)
        if options.get("max_value") is not None:
            high = F.lit(options["max_value"])
            inside = inside & (value < high if options.get("strict_max") else value <= high)
        return value.isNotNull(), ~inside
    raise ValueError(f"no measure for expectation kind {e.kind!r}")


def measures(candidate: DataFrame, expected: Sequence[Expectation], by: str | None = None,
             groups: Sequence[Any] = (None,)) -> dict[Any, list[Measure]]:
    """Every expectation over ``candidate`` (or over each of its ``by`` groups: every group
    named in ``groups`` gets measures, an empty one vacuous ones) in one aggregation; the
    examples of unexpected values only for what fails."""
    keys = [by] if by else []
    judged = [_judged(e, keys) for e in expected]
    values = list(dict.fromkeys(c for e in expected for c in e.columns))
    flagged = candidate.select(
        *keys, *values,
        *[F.coalesce(c & u, F.lit(False)).alias(f"_u{i}") for i, (c, u) in enumerate(judged)],
        *[c.alias(f"_c{i}") for i, (c, _) in enumerate(judged)])
    totals = flagged.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("_n"),
        *[F.sum(F.col(f"_c{i}").cast("long")).alias(f"_c{i}") for i in range(len(expected))],
        *[F.sum(F.col(f"_u{i}").cast("long")).alias(f"_u{i}") for i in range(len(expected))],
    ).collect()
    found = {(r[by] if by else None): r for r in totals}
    out: dict[Any, list[Measure]] = {}
    for group in groups:
        row = found.get(group)
        made = []
        for i, e in enumerate(expected):
            m = Measure(e, row["_n"] if row else 0, (row[f"_c{i}"] or 0) if row else 0,
                        (row[f"_u{i}"] or 0) if row else 0)
            if not m.success:
                part = flagged.where(F.col(f"_u{i}"))
                if by:
                    part = part.where(F.col(by) == group)
                unexpected = part.select(*e.columns).limit(EXAMPLES).collect()
                m = Measure(m.rule, m.element_count, m.considered, m.unexpected_count,
                            tuple(r[0] if len(e.columns) == 1 else r.asDict()
                                  for r in unexpected))
            made.append(m)
        out[group] = made
    return out


@dataclass
class _Validation:
    """One candidate's measures: rows of ``ops.quality_results`` and a page of the Data Docs."""

    table: str
    source: str
    batch: Any
    blocking: bool
    measured: list[Measure]
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def rows(self, run_id: str) -> list[tuple[Any, ...]]:
        at = self.at.replace(tzinfo=None)  # the table's timestamps are naive UTC
        return [(run_id, self.table, self.source, m.expectation, m.column, m.success,
                 self.blocking, m.element_count, m.unexpected_count,
                 json.dumps({k: v for k, v in m.summary().items()
                             if k in ("unexpected_percent", "partial_unexpected_list")},
                            default=str), at)
                for m in self.measured]


class QualityGate:
    """Measures candidates; ``finish`` writes the results and the Data Docs."""

    def __init__(self, lakehouse: Lakehouse, config: QualityConfig, run_id: str,
                 report_dir: Path,
                 rules_of: Callable[[], dict[str, list[Expectation]]] = rules) -> None:
        self.lakehouse = lakehouse
        self.config = config
        self.run_id = run_id
        self.docs_dir = report_dir / "quality"
        self.rules = rules_of()
        self.validations: list[_Validation] = []

    def check(self, table: str, candidate: DataFrame, source: str = "",
              absent: frozenset[str] = frozenset()) -> None:
        """Validate ``candidate`` for ``table``; raise QualityError when a blocking suite fails.
        Expectations on ``absent`` columns (the source has nothing for them) are recorded but
        never block."""
        self.check_groups(table, candidate, None, [None], source, absent)

    def check_groups(self, table: str, candidate: DataFrame, by: str | None,
                     groups: Sequence[Any], source: str = "",
                     absent: frozenset[str] = frozenset(), raising: bool = True
                     ) -> dict[Any, str]:
        """{group: why it failed, or ''} with each ``by`` group of ``candidate`` judged on its
        own rows; a blocking failure raises QualityError unless ``raising`` is off."""
        if table not in self.rules:
            return {g: "" for g in groups}
        blocking = table in self.config.blocking
        verdicts = {}
        for group, measured in measures(candidate, self.rules[table], by, groups).items():
            self.validations.append(_Validation(table, source, group, blocking, measured))
            failed = []
            for m in measured:
                if not m.success and m.column in absent:
                    log.warning("%s: %s(%s) not met: %s maps nothing onto it", table,
                                m.expectation, m.column, source)
                elif not m.success:
                    failed.append(f"{m.expectation}({m.column}): {m.unexpected_count} "
                                  f"unexpected of {m.element_count}, e.g. "
                                  f"{list(m.examples[:3])}")
            verdicts[group] = ""
            if failed:
                message = f"quality suite of {table} failed ({source}): " + "; ".join(failed)
                if not blocking:
                    log.warning("%s (warning suite: committed anyway)", message)
                else:
                    verdicts[group] = message + " - nothing was committed to " + table
        refused = [why for why in verdicts.values() if why]
        if refused and raising:
            self.finish()
            raise QualityError(refused[0])
        return verdicts

    def finish(self) -> None:
        """Write the collected results to ``ops.quality_results`` and the Data Docs of every
        validation so far."""
        rows = [row for v in self.validations for row in v.rows(self.run_id)]
        if not rows:
            return
        self.lakehouse.append(QUALITY_RESULTS, arrow_rows(rows, declared(QUALITY_RESULTS).ddl))
        if self.config.data_docs:
            data_docs(self.validations, self.docs_dir, self.run_id)
            log.info("quality: GX Data Docs in %s", self.docs_dir / "index.html")
        self.validations = []


def data_docs(validations: Sequence[_Validation], directory: Path, run_id: str) -> None:
    """GX Data Docs of the validations, rendered by GX from their results."""
    import great_expectations as gx
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site("seglake", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(directory.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    added: set[str] = set()
    for v in validations:
        expectations = [gx_expectation(m.rule) for m in v.measured]
        if v.table not in added:
            context.suites.add(gx.ExpectationSuite(name=v.table, expectations=expectations))
            added.add(v.table)
        results = [ExpectationValidationResult(success=m.success,
                                               expectation_config=e.configuration,
                                               result=m.summary())
                   for m, e in zip(v.measured, expectations, strict=True)]
        passed = sum(r.success for r in results)
        run = RunIdentifier(run_name=run_id, run_time=v.at)
        batch = (v.source or v.table) + (f"-batch-{v.batch}" if v.batch is not None else "")
        suite_id = ExpectationSuiteIdentifier(name=v.table)
        context.validation_results_store.store_validation_results(
            suite_validation_result=ExpectationSuiteValidationResult(
                success=passed == len(results), results=results, suite_name=v.table,
                statistics={"evaluated_expectations": len(results),
                            "successful_expectations": passed,
                            "unsuccessful_expectations": len(results) - passed,
                            "success_percent": 100.0 * passed / len(results) if results
                            else None},
                meta={"run_id": run, "validation_time": v.at,
                      "batch_spec": {"data_asset_name": f"{v.table}: {batch}"}}),
            suite_validation_result_identifier=ValidationResultIdentifier(
                expectation_suite_identifier=suite_id, run_id=run, batch_identifier=batch),
            expectation_suite_identifier=suite_id)
    context.build_data_docs(site_names=["seglake"])
