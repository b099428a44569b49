"""``ops.run_log``: what each stage did, per source and batch — the counts that prove nothing
was lost (bronze rows = silver rows + quarantined + duplicates removed)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from seglake.declarations import RUN_LOG, declared
from seglake.lakehouse import Lakehouse
from seglake.lakehouse.schema import arrow_rows

log = logging.getLogger(__name__)

SCHEMA = declared(RUN_LOG).ddl
COLUMNS = declared(RUN_LOG).column_names


def new_run_id(stage: str) -> str:
    """Sortable and unique: ``<stage>-<UTC time>-<random>``; also the run's report folder."""
    now = dt.datetime.now(dt.timezone.utc)
    return f"{stage}-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass
class RunLog:
    """Collects a stage's entries and appends them to ``ops.run_log`` in one commit per flush."""

    lakehouse: Lakehouse
    stage: str
    run_id: str = ""
    started_at: dt.datetime = field(default_factory=utc_now)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.stage)

    def record(self, *, status: str = "ok", message: str = "", **counts: Any) -> dict[str, Any]:
        """One entry (source, table, batch_id, rows_in, rows_out, quarantined, duplicates,
        rejected_files); unknown keys are a bug, so they raise."""
        unknown = set(counts) - set(COLUMNS)
        if unknown:
            raise TypeError(f"not run-log columns: {sorted(unknown)}")
        entry = {name: None for name in COLUMNS}
        entry.update(counts, run_id=self.run_id, stage=self.stage, status=status,
                     message=message, started_at=self.started_at, finished_at=utc_now())
        self.entries.append(entry)
        log.info("%s %s%s%s: in %s, out %s%s", self.stage, entry["source"] or "",
                 f" -> {entry['table']}" if entry["table"] else "",
                 f" batch {entry['batch_id']}" if entry["batch_id"] is not None else "",
                 entry["rows_in"], entry["rows_out"],
                 f" ({status}: {message})" if status != "ok" or message else "")
        return entry

    def flush(self) -> None:
        """Append the entries not yet written."""
        if not self.entries:
            return
        rows = [tuple(e[name] for name in COLUMNS) for e in self.entries]
        self.lakehouse.append(RUN_LOG, arrow_rows(rows, SCHEMA))
        self.entries = []


def error_summary(exc: BaseException) -> str:
    """One line for the user: the exception's own message, not a Java or Python trace (a
    Py4J error is reduced to the JVM exception's class and message)."""
    text = str(exc)
    for line in text.splitlines():
        found = re.match(r"^:?\s*(?:[\w$]+\.)*(\w*(?:Exception|Error)):\s*(.+)$", line)
        if found and not line.startswith("An error occurred"):
            return f"{found.group(1)}: {found.group(2)}"[:500]
    first = next((line for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}"[:500] if first else type(exc).__name__
