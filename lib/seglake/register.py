"""``seglake register``: the record of processing activities (GDPR article 30) generated from the
table registry and the configuration, so it lists what seglake actually stores and does: each
purpose with its legal basis, tables and recipients; every table with personal data, its class,
subject columns and retention; the pseudonymisation; and the erasure procedure, built from the
same registry entries that ``seglake erase`` rewrites.

What only the controller knows (its name, contact, legal bases, recipients beyond the exports)
comes from the ``gdpr`` section of the configuration; unset, the register says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglake import __version__
from seglake.config import SeglakeConfig
from seglake.stages import STAGES
from seglake.tables import Registry, Table, registry

UNSET = "(not set: `gdpr.{}` in the configuration)"

# who the subjects of each subject-column kind are (the registry's SubjectKind)
SUBJECTS = {
    "email": "customers and prospects identified by email (CRM, orders, email platform)",
    "email_hash": "customers and prospects identified by email (CRM, orders, email platform)",
    "customer_id": "holders of a web-shop account or loyalty card (CRM)",
    "customer_key": "resolved customers (one per person found across sources)",
    "record_key": "holders of a web-shop account or loyalty card (CRM)",
    "client_id": "visitors of the web shop and app (cookies and device ids)",
    "order_id": "buyers (orders)",
    "text": "anyone named in a raw delivery line kept for quarantine",
    "identifier": "anyone identified by an email or phone hash, an account or a cookie in the "
                  "identity graph",
}
CLASSES = {
    "direct": "identifying data in clear (names, email, phone, postal address, birth date)",
    "pseudonymous": "pseudonymous identifiers (keyed hashes, customer keys, cookie ids) and "
                    "the behaviour, segments and scores keyed by them",
}


@dataclass(frozen=True)
class Purpose:
    id: str
    name: str
    description: str
    stages: tuple[str, ...]


PURPOSES = (
    Purpose("collection", "Collection and quality control",
            "Receive the retailer's deliveries (web and app events, orders, CRM, email "
            "platform, consents), check them against declared expectations and pseudonymise "
            "identifiers.", ("ingest", "refine")),
    Purpose("identity", "Identity resolution",
            "Link each person's CRM records, accounts and cookies into one customer, with a "
            "golden record and its marketing consent.", ("resolve",)),
    Purpose("segmentation", "Behavioural segmentation",
            "Compute behavioural features (RFM, engagement, browsing, funnel, intent) and "
            "assign customers to rule segments and clusters.", ("features", "segment")),
    Purpose("scoring", "Propensity and churn scoring",
            "Estimate each customer's chance to buy and to churn with models trained on past "
            "behaviour.", ("score",)),
    Purpose("activation", "Marketing exports and holdouts",
            "Publish segment tables and hand the consenting treatment groups to marketing "
            "tools; keep a random holdout out of activation.", ("publish",)),
    Purpose("measurement", "Campaign measurement",
            "Compare treatment and holdout after a campaign; learn whom a campaign moves "
            "(uplift).", ("measure",)),
)


def _purpose_tables(reg: Registry, purpose: Purpose) -> tuple[list[str], list[str]]:
    """(personal-data tables the purpose's stages write, those they read)."""
    stages = [s for s in STAGES if s.name in purpose.stages]
    written = sorted({t for s in purpose.stages for t in reg.written_by(s)
                      if reg[t].pii != "none"})
    read = sorted({t for s in stages for t in s.reads
                   if t in reg and reg[t].pii != "none" and t not in written})
    return written, read


def _table_entry(table: Table) -> dict[str, Any]:
    return {
        "table": table.name, "layer": table.layer, "class": table.pii,
        "description": table.description, "written_by": table.owner,
        "subjects": sorted({SUBJECTS.get(kind, kind) for kind in table.subjects.values()}),
        "subject_columns": dict(table.subjects), "retention": table.retention,
        "erasure": (f"kept: {table.erasure_exempt}" if table.erasure_exempt else
                    "rows of the subject deleted" if table.subjects else
                    "holds no subject column: nothing to delete"),
        "columns": [c.name for c in table.columns],
    }


def erasure_steps(reg: Registry) -> list[str]:
    """What ``seglake erase`` does, table by table, from the registry entries it uses."""
    steps = [
        "The request names the subject by email (`seglake erase --email`) or by customer key "
        "(`--customer-key`); its identifiers are gathered: the email and its keyed hash, its "
        "CRM record keys and account ids, the cookies and devices those accounts logged in "
        "with, and its order ids.",
    ]
    for name, subjects in sorted(reg.erasable().items()):
        table = reg[name]
        columns = ", ".join(f"{c} ({kind})" for c, kind in sorted(subjects.items()))
        steps.append(f"{name}: rows whose {columns} is one of the subject's identifiers are "
                     "deleted" + (f" (kept on erasure: {table.erasure_exempt})"
                                  if table.erasure_exempt else ""))
    steps += [
        "By email, a customer who also holds other people's records (the subject bridged two "
        "profiles) keeps those records: they are released and re-linked by the next resolve.",
        "With `--vacuum`, the files of older table versions and their log go too, so time "
        "travel cannot bring the subject back; without it, older versions keep the subject "
        "until they are vacuumed.",
        "Landing files that held the subject are listed for the operator: they are the "
        "sources' deliveries, to be erased at the source.",
        "Each erasure is logged in ops.erasure_log with the subject's keyed hash only.",
    ]
    return steps


def processing_register(config: SeglakeConfig, reg: Registry | None = None) -> dict[str, Any]:
    """The register as data (the JSON file; the Markdown renders it)."""
    reg = reg or registry(config)
    conf = config.gdpr
    personal = [reg[n] for n in reg if reg[n].pii != "none"]
    exports = [f"{config.reports.root.rstrip('/')}/exports/<as_of>/{kind}/ (CSV and Parquet)"
               for kind in config.publish.export_kinds]
    purposes = []
    for p in PURPOSES:
        written, read = _purpose_tables(reg, p)
        purposes.append({
            "id": p.id, "name": p.name, "description": p.description,
            "legal_basis": conf.legal_basis.get(p.id) or UNSET.format(f"legal_basis.{p.id}"),
            "stages": list(p.stages), "writes": written, "reads": read,
            "data_subjects": sorted({s for t in written + read
                                     for s in _table_entry(reg[t])["subjects"]}),
            "recipients": (exports + conf.recipients) if p.id == "activation" else [],
        })
    return {
        "title": "Record of processing activities (GDPR article 30)",
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "generator": f"seglake {__version__}",
        "controller": conf.controller or UNSET.format("controller"),
        "contact": conf.contact or UNSET.format("contact"),
        "purposes": purposes,
        "categories_of_data": {cls: text for cls, text in CLASSES.items()
                               if any(t.pii == cls for t in personal)},
        "data_subjects": sorted({s for t in personal for s in _table_entry(t)["subjects"]}),
        "tables": [_table_entry(t) for t in personal],
        "pseudonymisation": (
            "Emails and phone numbers are replaced in silver by keyed hashes (HMAC-SHA256 of the "
            "canonical form) with a key read only from the environment variable "
            "SEGLAKE_PSEUDONYMIZATION_KEY, never logged or written; identifying data in clear "
            "is kept only in the tables of class 'direct': "
            + ", ".join(t.name for t in personal if t.pii == "direct") + "."),
        "consent": (f"Exports carry only customers whose latest "
                    f"'{config.identity.marketing_purpose}' consent is granted; withdrawals "
                    "take effect at the next resolve and publish."),
        "recipients": exports + conf.recipients,
        "transfers": conf.transfers or UNSET.format("transfers"),
        "retention": {t.name: t.retention for t in personal},
        "erasure_procedure": erasure_steps(reg),
    }


def register_markdown(data: dict[str, Any]) -> str:
    """The register as a Markdown document."""
    lines = [f"# {data['title']}", "",
             f"Generated {data['generated_at']} by {data['generator']} from the table registry "
             "and the configuration.", "",
             f"- **Controller:** {data['controller']}", f"- **Contact:** {data['contact']}",
             f"- **Transfers outside the EEA:** {data['transfers']}", "",
             "## Purposes", ""]
    for p in data["purposes"]:
        lines += [f"### {p['name']}", "", p["description"], "",
                  f"- Legal basis: {p['legal_basis']}",
                  f"- Stages: {', '.join(f'`{s}`' for s in p['stages'])}",
                  f"- Personal data written: {', '.join(p['writes']) or 'none'}",
                  f"- Personal data read: {', '.join(p['reads']) or 'none'}",
                  f"- Data subjects: {'; '.join(p['data_subjects']) or 'none'}"]
        if p["recipients"]:
            lines.append(f"- Recipients: {'; '.join(p['recipients'])}")
        lines.append("")
    lines += ["## Categories of data and of data subjects", ""]
    lines += [f"- **{cls}**: {text}" for cls, text in data["categories_of_data"].items()]
    lines += [""] + [f"- {s}" for s in data["data_subjects"]]
    lines += ["", "## Tables with personal data", "",
              "| table | class | subject columns | retention | on erasure |",
              "|---|---|---|---|---|"]
    for t in data["tables"]:
        subjects = ", ".join(f"{c} ({k})" for c, k in t["subject_columns"].items()) or "none"
        lines.append(f"| {t['table']} | {t['class']} | {subjects} | {t['retention']} | "
                     f"{t['erasure']} |")
    lines += ["", "## Pseudonymisation", "", data["pseudonymisation"], "",
              "## Consent", "", data["consent"], "",
              "## Recipients", ""] + [f"- {r}" for r in data["recipients"]]
    lines += ["", "## Erasure procedure (`seglake erase`)", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(data["erasure_procedure"], 1)]
    return "\n".join(lines) + "\n"


def write_register(config: SeglakeConfig, folder: str | Path) -> tuple[Path, Path]:
    """register.md and register.json in ``folder``; returns their paths."""
    data = processing_register(config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "register.md", folder / "register.json"
    md.write_text(register_markdown(data), encoding="utf-8")
    js.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js
