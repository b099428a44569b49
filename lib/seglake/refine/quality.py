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
from seglake.lakehouse import Lakehouse
from seglake.runlog import utc_now

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)

QUALITY_RESULTS = "ops.quality_results"
RESULTS_SCHEMA = (  # DDL: createDataFrame takes it as the schema
    "run_id STRING, `table` STRING, source STRING, expectation STRING, `column` STRING, "
    "success BOOLEAN, blocking BOOLEAN, element_count BIGINT, unexpected_count BIGINT, "
    "details STRING, checked_at TIMESTAMP")
_HASH = r"^[0-9a-f]{64}$"


class QualityError(RuntimeError):
    """A blocking suite failed: the candidate was not committed."""


def suites() -> dict[str, list[Any]]:
    """The expectations of each silver table (GX expectation objects), in one place."""
    import great_expectations.expectations as gxe

    def not_null(*columns: str) -> list[Any]:
        return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]

    return {
        "silver.events": [
            *not_null("event_id", "event_type", "event_ts", "source"),
            gxe.ExpectColumnValuesToBeInSet(column="source", value_set=["web", "app"]),
            gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0,
                                              max_value=86_400),
        ],
        "silver.orders": [
            *not_null("order_id", "ordered_at", "status"),
            gxe.ExpectColumnValuesToBeUnique(column="order_id"),
            gxe.ExpectColumnValuesToBeBetween(column="gross_amount", min_value=0),
            gxe.ExpectColumnValuesToMatchRegex(column="customer_email_hash", regex=_HASH),
        ],
        "silver.order_lines": [
            *not_null("order_id", "line_no", "product_id"),
            gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0),
        ],
        "silver.email_events": [
            *not_null("event_id", "email_hash", "event", "event_ts"),
            gxe.ExpectColumnValuesToMatchRegex(column="email_hash", regex=_HASH),
        ],
        "silver.customers_raw": [
            *not_null("record_key", "system", "source_id", "created_at"),
            gxe.ExpectColumnValuesToBeUnique(column="record_key"),
            gxe.ExpectColumnValuesToMatchRegex(column="email_hash", regex=_HASH),
            gxe.ExpectColumnValuesToNotBeNull(column="email_hash", mostly=0.9),
        ],
        # no value checks on PII: failing values would be copied into results and Data Docs
        "silver.customers_raw_pii": [
            *not_null("record_key", "last_name"),
            gxe.ExpectColumnValuesToBeUnique(column="record_key"),
        ],
        "silver.consents": [
            *not_null("subject_hash", "purpose", "status", "updated_at"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["subject_hash", "purpose"]),
        ],
        "silver.products": [
            *not_null("product_id", "name", "category", "price"),
            gxe.ExpectColumnValuesToBeUnique(column="product_id"),
        ],
    }


class QualityGate:
    """Validates candidates with GX; ``finish`` writes the results and the Data Docs."""

    def __init__(self, lakehouse: Lakehouse, config: QualityConfig, run_id: str,
                 report_dir: Path, suites_of: Callable[[], dict[str, list[Any]]] = suites
                 ) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.lakehouse = lakehouse
        self.config = config
        self.run_id = run_id
        self.docs_dir = report_dir / "quality"
        self.suites = suites_of()
        self.results: list[tuple[Any, ...]] = []
        self._gx = gx
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if config.data_docs:
            self._context.add_data_docs_site("seglake", {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(self.docs_dir.resolve())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        self._datasource = self._context.data_sources.add_spark("seglake")
        self._checkpoints: dict[str, Any] = {}

    def _checkpoint(self, table: str) -> Any:
        if table not in self._checkpoints:
            gx = self._gx
            asset = self._datasource.add_dataframe_asset(table)
            batch = asset.add_batch_definition_whole_dataframe("candidate")
            suite = self._context.suites.add(
                gx.ExpectationSuite(name=table, expectations=self.suites[table]))
            validation = self._context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=suite))
            # no Data Docs action: it re-renders the whole site per run; ``finish`` builds it once
            self._checkpoints[table] = self._context.checkpoints.add(gx.Checkpoint(
                name=table, validation_definitions=[validation], result_format="SUMMARY"))
        return self._checkpoints[table]

    def check(self, table: str, candidate: DataFrame, source: str = "") -> bool:
        """Validate ``candidate`` for ``table``; raise QualityError when a blocking suite fails."""
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
                if not r.success:
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
                                                                     RESULTS_SCHEMA))
        self.results = []
        if self.config.data_docs:
            self._context.build_data_docs(site_names=["seglake"])
            log.info("quality: GX Data Docs in %s", self.docs_dir / "index.html")
