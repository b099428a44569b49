"""The table registry and the declared stages: one declaration per table, from which erasure,
quality, write checks, partitioning and the docs are derived; no stage imports another's code."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import hmac
from pathlib import Path

import pytest
from conftest import TEST_KEY
from pyspark.sql import functions as F

import seglake
from seglake import cli
from seglake.config import SeglakeConfig
from seglake.declarations import QUARANTINE, RULE_SEGMENTS, declared
from seglake.lakehouse import Lakehouse
from seglake.privacy import email_key
from seglake.refine.quality import suites
from seglake.stages import BRONZE, PIPELINE, STAGES
from seglake.tables import (
    Registry,
    RegistryError,
    Table,
    TableSchemaError,
    columns,
    reference_markdown,
    registry,
)

REPO = Path(__file__).parent.parent


def rooted(config: SeglakeConfig, root: Path) -> SeglakeConfig:
    data = config.model_dump()
    data["lakehouse"]["root"] = str(root / "lakehouse")
    data["reports"]["root"] = str(root / "reports")
    return SeglakeConfig.model_validate(data)


NOTES = Table(
    "silver.service_notes", "Customer-service notes (a table added by a test).", "refine",
    columns("""
note_id STRING NOT NULL -- the note
email_hash STRING -- keyed hash of the customer's email
note STRING -- what was said
"""), key=("note_id",), pii="pseudonymous", subjects={"email_hash": "email_hash"})


def test_every_table_is_declared_once_with_an_owner_stage_and_erasable_personal_data():
    reg = registry()
    stages = {s.name for s in STAGES} | {"check"}
    assert all(not t.problems(stages) for t in reg.values())
    # every configured source has its bronze table, with the source's subject columns
    config = SeglakeConfig()
    for name, source in config.sources.items():
        bronze = reg[f"bronze.{name}"]
        assert bronze.owner == "ingest" and set(source.subject) <= set(bronze.subjects)
    # personal data without subject columns is refused: erasure could not find the subject
    with pytest.raises(RegistryError, match="silver.service_notes: PII class 'pseudonymous' "
                                            "but no subject columns"):
        reg.with_tables(Table(NOTES.name, NOTES.description, "refine", NOTES.columns,
                              pii="pseudonymous"))
    with pytest.raises(RegistryError, match="subject column 'email' is not declared"):
        Registry([Table(NOTES.name, "", "refine", NOTES.columns, pii="direct",
                        subjects={"email": "email"})])
    # only the owner writes a table; the pipeline's stages each own something
    for stage in PIPELINE:
        if stage not in ("demo", "report"):
            assert reg.written_by(stage), stage


def test_quality_suites_come_from_the_declared_expectations():
    found = suites()
    orders = [(type(e).__name__, e.column) for e in found["silver.orders"]]
    # NOT NULL columns first, then the declared rules
    assert orders[:3] == [("ExpectColumnValuesToNotBeNull", c)
                          for c in ("order_id", "ordered_at", "status")]
    assert ("ExpectColumnValuesToBeUnique", "order_id") in orders
    mostly = [e for e in found["silver.customers_raw"] if getattr(e, "mostly", 1) < 1]
    assert [(e.column, e.mostly) for e in mostly] == [("email_hash", 0.9)]
    assert [type(e).__name__ for e in found["silver.consents"]][-1] == \
        "ExpectCompoundColumnsToBeUnique"
    # a declaration with no expectations gets no suite; a new declaration gets one
    assert "silver.service_notes" in suites(registry().with_tables(NOTES))
    assert not any(name.startswith(("gold.", "ops.")) for name in found)


def test_writes_are_checked_against_the_declaration_and_partitioned_as_declared(
        spark, config, tmp_path):
    lake = Lakehouse.from_config(spark, rooted(config, tmp_path))
    good = spark.createDataFrame([("k1", "Loyal", ["vip"], dt.date(2025, 6, 1), "r1")],
                                 declared(RULE_SEGMENTS).ddl)
    lake.overwrite(RULE_SEGMENTS, good)
    assert [p.name for p in (tmp_path / "lakehouse/gold/rule_segments").glob("as_of=*")] == \
        ["as_of=2025-06-01"]
    with pytest.raises(TableSchemaError, match=r"gold.rule_segments \(written by segment\): "
                                               r"column 'surprise' is not declared"):
        lake.append(RULE_SEGMENTS, good.withColumn("surprise", F.lit(1)))
    with pytest.raises(TableSchemaError, match="non-null column 'rule_segment' is missing"):
        lake.append(RULE_SEGMENTS, good.drop("rule_segment"))
    with pytest.raises(TableSchemaError, match="column 'tags' is string, declared "
                                               r"array<string>"):
        lake.append(RULE_SEGMENTS, good.withColumn("tags", F.lit("vip")))
    with pytest.raises(TableSchemaError, match=r"partitioned by \['run_id'\], declared "
                                               r"\['as_of'\]"):
        lake.append(RULE_SEGMENTS, good, partition_by=["run_id"])
    with pytest.raises(TableSchemaError, match="silver.service_notes is not declared"):
        lake.overwrite("silver.service_notes", spark.range(1))
    assert lake.read(RULE_SEGMENTS).count() == 1  # nothing was committed by the failures


def test_erasure_covers_a_table_added_in_a_temporary_registry(spark, config, tmp_path):
    from seglake.erasure import erase

    cfg = rooted(config, tmp_path)
    reg = registry(cfg).with_tables(NOTES)
    lake = Lakehouse.from_config(spark, cfg, reg)
    email = "Ann.Martin@Example.org"
    canonical = spark.range(1).select(email_key(F.lit(email))).first()[0]
    mine = hmac.new(TEST_KEY.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    notes = spark.createDataFrame([("n1", mine, "asked for a refund"),
                                   ("n2", "0" * 64, "someone else"),
                                   ("n3", mine, "changed address")], NOTES.ddl)
    lake.overwrite(NOTES.name, notes)
    lake.overwrite(QUARANTINE, spark.createDataFrame(
        [("crm_eshop", "silver.customers_raw", ["required:id_client"], "{}", "f" * 64, None,
          None, dt.datetime(2025, 6, 1))], declared(QUARANTINE).ddl))

    result = erase(spark, cfg, email=email.upper(), reg=reg)

    assert sorted(r.note_id for r in lake.read(NOTES.name).collect()) == ["n2"]
    assert result.rows_deleted == {NOTES.name: 2, QUARANTINE: 0}  # nobody of hers there
    assert NOTES.name in lake.read("ops.erasure_log").first()["tables"]
    # the default registry does not know the table, so erasure there would not either:
    # every write to an undeclared table is refused
    with pytest.raises(TableSchemaError, match="silver.service_notes is not declared"):
        Lakehouse.from_config(spark, cfg).append(NOTES.name, notes)


def _imports(path: Path, module: str) -> set[str]:
    """Every seglake module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found |= {name} | {f"{name}.{a.name}" for a in node.names}
    return {n for n in found if n == "seglake" or n.startswith("seglake.")}


def test_no_stage_imports_another_stages_modules():
    root = Path(seglake.__file__).parent
    packages = {s.package: s.name for s in STAGES}

    def stage_of(module: str) -> str | None:
        return next((name for package, name in packages.items()
                     if module == package or module.startswith(package + ".")), None)

    checked, crossings = 0, []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("seglake", *parts)).removesuffix(".__init__")
        mine = stage_of(module)
        if mine is None:
            continue
        checked += 1
        for imported in _imports(path, module):
            other = stage_of(imported)
            if other is not None and other != mine:
                crossings.append(f"{module} ({mine}) imports {imported} ({other})")
    assert checked > 30  # every stage package was seen
    assert crossings == []


def test_each_stage_reads_declared_tables_that_an_earlier_stage_writes():
    reg = registry()
    order = [s.name for s in STAGES]  # the declared order, stages outside `seglake run` too
    assert [n for n in order if n in PIPELINE] == list(PIPELINE)
    for stage in STAGES:
        for table in stage.reads:
            owner = "ingest" if table == BRONZE else reg.declared(table).owner
            assert order.index(owner) < order.index(stage.name), (stage.name, table)


def test_docs_table_reference_is_the_registry(capsys):
    docs = (REPO / "docs" / "tables.md").read_text(encoding="utf-8")
    assert docs == reference_markdown(registry()), "run `seglake tables --markdown > " \
        "docs/tables.md`"
    assert cli.main(["tables", "--markdown"]) == 0
    assert capsys.readouterr().out == docs
    assert cli.main(["tables", "--no-spark"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in registry())
    assert "silver.customers_pii" in listed and "direct" in listed
