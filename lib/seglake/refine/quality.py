"""Quality gates: a Great Expectations suite per silver table, run on the candidate rows
before they are committed. A blocking suite that fails stops the write (the table keeps its
version); a warning suite only records. Results go to ``ops.quality_results`` and GX Data Docs
to ``<run report>/quality/``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from seglake.config import QualityConfig
from seglake.declarations import QUALITY_RESULTS, declared
from seglake.lakehouse import Lakehouse
from seglake.runlog import utc_now
from seglake.tables import Expectation, Registry, registry

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)



class QualityError(RuntimeError):
    """A blocking suite failed: the candidate was not committed."""


def suites(reg: Registry | None = None) -> dict[str, list[Any]]:
    """The GX suite of each silver table, from the registry's expectations."""
    import great_expectations.expectations as gxe

    def gx(e: Expectation) -> Any:
        options = dict(e.options)
        if e.kind == "unique_together":
            return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(e.columns), **options)
        kind = {"not_null": gxe.ExpectColumnValuesToNotBeNull,
                "unique": gxe.ExpectColumnValuesToBeUnique,
                "in_set": gxe.ExpectColumnValuesToBeInSet,
                "between": gxe.ExpectColumnValuesToBeBetween,
                "regex": gxe.ExpectColumnValuesToMatchRegex}[e.kind]
        return kind(column=e.columns[0], **options)

    reg = reg if reg is not None else registry()
    return {name: [gx(e) for e in table.all_expectations()] for name, table in reg.items()
            if table.layer == "silver" and table.all_expectations()}


class QualityGate:
    """Validates candidates with GX; ``finish`` writes the results and the Data Docs."""

    def __init__(self, lakehouse: Lakehouse, config: QualityConfig, run_id: str,
                 report_dir: Path, suites_of: Callable[[], dict[str, list[Any]]] = suites
                 ) -> None:
        self.lakehouse = lakehouse
        self.config = config
        self.run_id = run_id
        self.docs_dir = report_dir / "quality"
        self.suites = suites_of()
        self.results: list[tuple[Any, ...]] = []
        self._context: Any = None  # GX's context and Spark datasource, made by the first
        self._datasource: Any = None  # validation
        self._checkpoints: dict[str, Any] = {}

    def _gx(self) -> tuple[Any, Any]:
        """GX and its ephemeral context (a few seconds to import and build: only when a
        candidate is validated, not on a run with nothing new)."""
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        if self._context is None:
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
            if self.config.data_docs:
                self._context.add_data_docs_site("seglake", {
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                      "base_directory": str(self.docs_dir.resolve())},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
            self._datasource = self._context.data_sources.add_spark("seglake")
        return gx, self._context

    def _checkpoint(self, table: str) -> Any:
        if table not in self._checkpoints:
            gx, context = self._gx()
            asset = self._datasource.add_dataframe_asset(table)
            batch = asset.add_batch_definition_whole_dataframe("candidate")
            suite = context.suites.add(
                gx.ExpectationSuite(name=table, expectations=self.suites[table]))
            validation = context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=suite))
            # no Data Docs action: it re-renders the whole site per run; ``finish`` builds it once
            self._checkpoints[table] = context.checkpoints.add(gx.Checkpoint(
                name=table, validation_definitions=[validation], result_format="SUMMARY"))
        return self._checkpoints[table]

    def check(self, table: str, candidate: DataFrame, source: str = "",
              absent: frozenset[str] = frozenset()) -> bool:
        """Validate ``candidate`` for ``table``; raise QualityError when a blocking suite fails.
        Expectations on ``absent`` columns (the source has nothing for them) are recorded but
        never block."""
        if table not in self.suites:
            return True
        blocking = table in self.config.blocking
        outcome = self._checkpoint(table).run(batch_parameters={"dataframe": candidate})
        failed = []
        for validation in outcome.run_results.values():
            for r in validation.results:
                kwargs = r.expectation_config.kwargs
                column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
                result = r.result or {}
                self.results.append((
                    self.run_id, table, source, r.expectation_config.type, column,
                    bool(r.success), blocking, result.get("element_count"),
                    result.get("unexpected_count"),
                    json.dumps({k: result[k] for k in ("unexpected_percent",
                                                        "partial_unexpected_list",
                                                        "observed_value") if k in result},
                               default=str), utc_now()))
                if not r.success and column in absent:
                    log.warning("%s: %s(%s) not met: %s maps nothing onto it", table,
                                r.expectation_config.type, column, source)
                elif not r.success:
                    failed.append(f"{r.expectation_config.type}({column}): "
                                  f"{result.get('unexpected_count')} unexpected of "
                                  f"{result.get('element_count')}, e.g. "
                                  f"{(result.get('partial_unexpected_list') or [])[:3]}")
        if not failed:
            return True
        message = f"quality suite of {table} failed ({source}): " + "; ".join(failed)
        if blocking:
            self.finish()
            raise QualityError(message + " - nothing was committed to " + table)
        log.warning("%s (warning suite: committed anyway)", message)
        return False

    def finish(self) -> None:
        """Write the collected results to ``ops.quality_results`` and the Data Docs of every
        validation so far."""
        if not self.results:
            return
        spark = self.lakehouse.spark
        self.lakehouse.append(QUALITY_RESULTS, spark.createDataFrame(self.results,
                                                                     declared(QUALITY_RESULTS).ddl))
        self.results = []
        if self.config.data_docs and self._context is not None:
            self._context.build_data_docs(site_names=["seglake"])
            log.info("quality: GX Data Docs in %s", self.docs_dir / "index.html")
