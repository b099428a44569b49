"""The table registry: every table seglake writes, declared once.

A declaration holds what is known about a table — layer, owner stage, schema with column docs,
key, partitioning, PII class, the columns that identify a data subject, retention and default
expectations. Erasure, the quality suites, write-time schema checks, partitioning, the table
reference in docs/ and the report's hints are derived from it (the dbt / Delta Live Tables idea).
Bronze declarations are generated from the sources in the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from seglake.lakehouse.errors import SchemaMismatchError

if TYPE_CHECKING:
    from pyspark.sql import types as T

    from seglake.config import SeglakeConfig, SourceConfig

Pii = Literal["direct", "pseudonymous", "none"]
# what a subject column holds; erasure looks each kind up among the subject's identifiers
# ("identifier": an id_value whose id_kind column names its kind, as in the identity map)
SubjectKind = Literal["email", "email_hash", "customer_id", "client_id", "order_id",
                      "customer_key", "record_key", "identifier", "text"]
LAYERS = ("bronze", "silver", "gold", "ops")
LINEAGE = ("_source", "_source_file", "_batch_id")  # on every silver row refined from bronze
CORRUPT = "_corrupt_record"
# readers that keep the text of a record they cannot parse in a column of that name
KEEPS_CORRUPT = frozenset({"json", "csv"})
ANY_STAGE = "*"  # shared operational tables: every stage appends through runlog / models


class RegistryError(ValueError):
    """A declaration contradicts itself (e.g. personal data that erasure could not find)."""


class TableSchemaError(SchemaMismatchError):
    """Data written to a declared table does not fit its declaration (or it is undeclared)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str          # Spark SQL type, lower case (``string``, ``array<string>``, ...)
    nullable: bool
    doc: str


@dataclass(frozen=True)
class Expectation:
    """A data-quality rule in the registry's words; ``quality`` turns it into GX."""

    kind: Literal["not_null", "unique", "unique_together", "in_set", "between", "regex"]
    columns: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.kind}({', '.join(self.columns)}{'; ' + extra if extra else ''})"


def expect(kind: str, *columns: str, **options: Any) -> Expectation:
    return Expectation(kind, columns, tuple(options.items()))  # type: ignore[arg-type]


def columns(text: str) -> tuple[Column, ...]:
    """Columns from lines of ``name TYPE [NOT NULL] -- doc`` (the registry's schema notation)."""
    out = []
    for line in text.strip().splitlines():
        spec, _, doc = line.partition("--")
        words = spec.split()
        if not words:
            continue
        not_null = words[-2:] == ["NOT", "NULL"]
        type_ = spark_type("".join(words[1:-2] if not_null else words[1:]))
        out.append(Column(words[0], type_, not not_null, doc.strip()))
    return tuple(out)


_ALIASES = {"integer": "int", "long": "bigint", "short": "smallint", "byte": "tinyint",
            "real": "float", "dec": "decimal"}


def spark_type(ddl: str) -> str:
    """A DDL type as Spark's ``simpleString`` spells it (``MAP<INT, DOUBLE>`` ->
    ``map<int,double>``), without starting Spark."""
    tokens = re.split(r"([<>,:()])", "".join(ddl.split()).lower())
    return "".join(_ALIASES.get(t, t) for t in tokens)


def ddl_fields(ddl: str) -> list[tuple[str, str]]:
    """``name TYPE, ...`` -> [(name, simpleString type)], split at top-level commas."""
    fields, depth, start = [], 0, 0
    for i, ch in enumerate(ddl + ","):
        depth += {"<": 1, "(": 1, ">": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            part = ddl[start:i].strip()
            start = i + 1
            if part:
                name, _, type_ = part.partition(" ")
                fields.append((name.strip("`"), spark_type(type_)))
    return fields


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    owner: str                                   # the stage that writes it
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    pii: Pii = "none"
    subjects: Mapping[str, SubjectKind] = field(default_factory=dict)
    retention: str = "until replaced or erased"
    expectations: tuple[Expectation, ...] = ()
    open_columns: str = ""                       # why columns beyond those declared are allowed
    erasure_exempt: str = ""                     # why personal data here is kept on erasure

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def ddl(self) -> str:
        """The declared schema as DDL (``createDataFrame`` takes it as the schema)."""
        return ", ".join(f"`{c.name}` {c.type}" for c in self.columns)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def all_expectations(self) -> list[Expectation]:
        """NOT NULL columns first (one rule each), then the declared rules."""
        return [*(expect("not_null", c.name) for c in self.columns if not c.nullable),
                *self.expectations]

    def problems(self, known_stages: set[str] | None = None) -> list[str]:
        """What contradicts itself in this declaration."""
        found = []
        names = set(self.column_names)
        if self.layer not in LAYERS:
            found.append(f"layer {self.layer!r} is not one of {', '.join(LAYERS)}")
        if self.pii != "none" and not self.subjects and not self.erasure_exempt:
            found.append(f"PII class {self.pii!r} but no subject columns: erasure could not "
                         "find the subject here (declare subjects, or erasure_exempt with why)")
        for role, listed in (("key", self.key), ("partition", self.partition_by),
                             ("subject", tuple(self.subjects)),
                             *(("expectation", e.columns) for e in self.expectations)):
            for name in listed:
                if name not in names and not self.open_columns:
                    found.append(f"{role} column {name!r} is not declared")
        if known_stages is not None and self.owner not in known_stages | {ANY_STAGE}:
            found.append(f"owner {self.owner!r} is not a stage")
        return found

    def check(self, schema: T.StructType, *, complete: bool = True) -> None:
        """Raise TableSchemaError naming the table and column when ``schema`` does not fit:
        an undeclared column, a type that differs, or (``complete``) a missing non-null one."""
        declared = {c.name: c for c in self.columns}
        problems = []
        for f in schema.fields:
            column = declared.get(f.name)
            if column is None:
                if not self.open_columns:
                    problems.append(f"column '{f.name}' is not declared")
                continue
            written = f.dataType.simpleString()
            if written != column.type and written != "void":
                problems.append(f"column '{f.name}' is {written}, declared {column.type}")
        if complete:
            problems += [f"non-null column '{c.name}' is missing" for c in self.columns
                         if not c.nullable and c.name not in schema.names]
        if problems:
            raise TableSchemaError(
                f"{self.name} (written by {self.owner}): " + "; ".join(problems)
                + " - declare the change in seglake/tables.py or fix the stage's output")


class Registry(Mapping[str, Table]):
    """The declared tables by name; iteration follows layer order, then declaration order."""

    def __init__(self, tables: list[Table]) -> None:
        order = {layer: i for i, layer in enumerate(LAYERS)}
        self._tables = {t.name: t for t in sorted(tables, key=lambda t: order.get(t.layer, 9))}
        if len(self._tables) != len(tables):
            raise RegistryError("a table is declared twice")
        problems = [f"{t.name}: {p}" for t in self._tables.values() for p in t.problems()]
        if problems:
            raise RegistryError("table registry: " + "; ".join(problems))

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def declared(self, name: str) -> Table:
        """The declaration of ``name``; an undeclared table is an error that says where to
        declare it."""
        if name not in self._tables:
            raise TableSchemaError(f"{name} is not declared in the table registry: add it to "
                                   "seglake/tables.py (bronze tables: declare the source)")
        return self._tables[name]

    def with_tables(self, *tables: Table) -> Registry:
        """This registry plus (or with replaced) ``tables``."""
        return Registry([*(t for n, t in self._tables.items()
                           if n not in {x.name for x in tables}), *tables])

    def written_by(self, stage: str) -> list[str]:
        return [n for n, t in self._tables.items() if t.owner == stage]

    def erasable(self) -> dict[str, Mapping[str, SubjectKind]]:
        """Every table that can hold a data subject, with its subject columns."""
        return {n: t.subjects for n, t in self._tables.items() if t.subjects}

    def hint(self, name: str) -> str:
        """What to run so that ``name`` exists."""
        owner = self.declared(name).owner
        return f"run `seglake {owner}`" if owner != ANY_STAGE else "run the pipeline"


def bronze_table(source: str) -> str:
    return f"bronze.{source}"


def bronze(name: str, source: Any) -> Table:
    """The bronze declaration of one configured source: its fields as delivered, plus lineage."""
    fields = ddl_fields(source.columns)
    delivered = tuple(Column(name, type_, True, "as delivered") for name, type_ in fields)
    corrupt = (Column(CORRUPT, "string", True, "the record as text when it could not be "
                      "parsed; null otherwise"),) if source.format in KEEPS_CORRUPT else ()
    subjects = dict(source.subject)
    if corrupt and subjects:
        subjects[CORRUPT] = "text"
    return Table(
        bronze_table(name), f"Every record of source `{name}` exactly as delivered "
        f"({source.format} files under landing/{source.path}), with lineage.", "ingest",
        (*delivered, *corrupt, *columns(_BRONZE_LINEAGE)),
        pii="direct" if subjects else "none", subjects=subjects,
        retention="kept: the replayable copy of every delivery (erasure deletes subjects)",
        open_columns="" if fields else "the source declares no columns: the reader's schema")


_BRONZE_LINEAGE = """
_source_file STRING NOT NULL -- the landing file the record came from
_ingested_at TIMESTAMP NOT NULL -- when ingest committed it (UTC)
_batch_id BIGINT NOT NULL -- the ingest micro-batch (idempotent transaction id)
"""
BRONZE_LINEAGE = tuple(c.name for c in columns(_BRONZE_LINEAGE))  # on every bronze row


def registry(config: SeglakeConfig | None = None) -> Registry:
    """Every table seglake writes: the fixed ones, the bronze table of each configured source
    and the feature columns of the configured windows."""
    from seglake.config import SeglakeConfig
    from seglake.declarations import declared_tables

    config = config or SeglakeConfig()
    return Registry([*(bronze(name, source) for name, source in config.sources.items()),
                     *declared_tables(config)])


def reference_markdown(reg: Registry) -> str:
    """The table reference in docs/ (a test keeps the file equal to this)."""
    lines = ["# Table reference", "",
             "Generated from the table registry (`lib/seglake/tables.py`, "
             "`lib/seglake/declarations.py`) by `seglake tables --markdown`; do not edit by hand.",
             "", "| table | owner | PII | key | partitioned by | subject columns |",
             "|---|---|---|---|---|---|"]
    for t in reg.values():
        lines.append(f"| [`{t.name}`](#{t.name.replace('.', '')}) | {t.owner} | {t.pii} | "
                     f"{', '.join(t.key) or '-'} | {', '.join(t.partition_by) or '-'} | "
                     f"{', '.join(t.subjects) or '-'} |")
    for t in reg.values():
        lines += ["", f"## {t.name}", "", t.description, "",
                  f"Owner stage: `{t.owner}`. PII class: {t.pii}. Retention: {t.retention}."]
        if t.erasure_exempt:
            lines.append(f"Kept on erasure: {t.erasure_exempt}.")
        if t.open_columns:
            lines.append(f"More columns than declared: {t.open_columns}.")
        rules = [e.describe() for e in t.all_expectations()]
        if rules:
            lines.append("Expectations: " + "; ".join(f"`{r}`" for r in rules) + ".")
        lines += ["", "| column | type | null | description |", "|---|---|---|---|"]
        for c in t.columns:
            doc = c.doc
            if c.name in t.subjects:
                doc = f"{doc.rstrip('.')}. Subject: {t.subjects[c.name]}."
            lines.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {doc} |")
    return "\n".join(lines) + "\n"


def declared_schema(source: SourceConfig) -> T.StructType:
    """The declared columns, plus the corrupt-record column for readers that fill one."""
    from pyspark.sql import types as T

    schema = T.StructType.fromDDL(source.columns) if source.columns.strip() else T.StructType()
    if source.format in KEEPS_CORRUPT and CORRUPT not in schema.names:
        schema = schema.add(CORRUPT, T.StringType())
    return schema
