"""The GDPR record of processing (`seglake register`) is generated from the registry and the
configuration: every table with personal data is in it, a new one appears without code, every
stage that writes personal data has a purpose, and the erasure procedure names exactly the
tables and columns `seglake erase` rewrites."""

from __future__ import annotations

import json
import typing
from types import SimpleNamespace

from seglake import cli
from seglake.config import SeglakeConfig
from seglake.erasure import Subject, subject_tables
from seglake.register import PURPOSES, SUBJECTS, processing_register, register_markdown
from seglake.stages import STAGES
from seglake.tables import Column, SubjectKind, Table, registry


def test_every_table_with_personal_data_is_in_the_register_with_its_retention():
    config = SeglakeConfig()
    reg = registry(config)
    data = processing_register(config, reg)
    personal = {n for n in reg if reg[n].pii != "none"}
    assert {t["table"] for t in data["tables"]} == personal and len(personal) > 20
    for t in data["tables"]:
        assert t["retention"] == reg[t["table"]].retention
        assert t["subject_columns"] == dict(reg[t["table"]].subjects)
    text = register_markdown(data)
    assert all(f"| {name} |" in text for name in personal)
    # the direct (clear) tables are named where pseudonymisation is described
    assert all(name in data["pseudonymisation"] for name in personal
               if reg[name].pii == "direct")
    assert set(SUBJECTS) == set(typing.get_args(SubjectKind))  # every subject kind described


def test_a_new_personal_table_appears_in_its_purpose_and_the_erasure_procedure():
    config = SeglakeConfig()
    loyalty = Table("gold.loyalty_tiers", "Loyalty tier per customer.", "publish",
                    (Column("customer_key", "string", False, "the customer"),
                     Column("tier", "string", True, "the tier")),
                    pii="pseudonymous", subjects={"customer_key": "customer_key"},
                    retention="latest publish only")
    data = processing_register(config, registry(config).with_tables(loyalty))
    assert "gold.loyalty_tiers" in {t["table"] for t in data["tables"]}
    activation = next(p for p in data["purposes"] if p["id"] == "activation")
    assert "gold.loyalty_tiers" in activation["writes"]
    assert any(step.startswith("gold.loyalty_tiers: rows whose customer_key (customer_key)")
               for step in data["erasure_procedure"])


def test_every_stage_writing_personal_data_has_a_purpose():
    reg = registry(SeglakeConfig())
    covered = {s for p in PURPOSES for s in p.stages}
    assert covered <= {s.name for s in STAGES}
    writers = {reg[n].owner for n in reg if reg[n].pii != "none"}
    # erase writes only the subject's keyed hash to its own log: the erasure is the purpose
    assert writers - covered <= {"erase"}, writers - covered


def test_the_erasure_procedure_names_what_erase_rewrites():
    """The procedure's table steps are the registry's erasable tables with their subject
    columns, which is what `subject_tables` (the erase stage's plan) walks."""
    config = SeglakeConfig()
    reg = registry(config)
    steps = processing_register(config, reg)["erasure_procedure"]
    named = {s.split(":", 1)[0] for s in steps if ": rows whose " in s}
    assert named == set(reg.erasable())
    for name, subjects in reg.erasable().items():
        step = next(s for s in steps if s.startswith(f"{name}: rows whose "))
        assert all(f"{c} ({k})" in step for c, k in subjects.items())
    # the erase command takes the options the procedure describes
    parser = cli.build_parser()
    options = {a for action in parser._subparsers._group_actions[0].choices["erase"]._actions
               for a in action.option_strings}
    assert {"--email", "--customer-key", "--vacuum"} <= options
    # and the erase stage's plan for a subject with every kind of identifier walks those tables
    subject = Subject("a" * 64)
    for kind in ("email", "customer_id", "client_id", "order_id", "customer_key", "record_key",
                 "phone_hash"):
        subject.add(kind, [f"{kind}-1"])

    class Everything:  # every declared table exists, with its declared columns
        def exists(self, name):
            return True

        def read(self, name):
            return SimpleNamespace(columns=reg[name].column_names)

    assert set(subject_tables(Everything(), reg, subject)) == named


def test_register_command_writes_markdown_and_json_without_spark(tmp_path, capsys):
    config_file = tmp_path / "seglake.yaml"
    config_file.write_text("gdpr:\n  controller: Maison Exemple SAS, 1 rue de la Paix, Paris\n"
                           "  recipients: [the email platform]\n", encoding="utf-8")
    assert cli.main(["register", "--config", str(config_file), "--out",
                     str(tmp_path / "out")]) == 0
    assert "register.md" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "register.json").read_text(encoding="utf-8"))
    assert data["controller"].startswith("Maison Exemple SAS")
    assert data["contact"].startswith("(not set: `gdpr.contact`")
    assert "the email platform" in data["recipients"]
    assert any("exports/<as_of>/rule/" in r for r in data["recipients"])
    markdown = (tmp_path / "out" / "register.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Record of processing activities")
    assert "## Erasure procedure" in markdown
