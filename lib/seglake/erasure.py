"""Right to erasure: delete one data subject from every table of every layer.

The subject is found by email (or, once identity resolution has run, by ``customer_key``); its
identifiers are gathered (email, its keyed hash, CRM/account ids, the cookies and devices those
accounts logged in with, its order ids), then every table that holds any of them is rewritten
without those rows. With vacuum, the files of older versions go too, and the log of older
versions (whose per-file min/max statistics can name the subject), so time travel cannot bring
the subject back. Landing files that held the subject are listed for the operator: they are the
sources' deliveries, not seglake's to rewrite.

By email, the subject is its own CRM records: a customer that also holds records of other
identifiers (the subject bridged two people, or a household shared a profile) loses the
subject's records and its profile rows, and its other records are released: the next resolve
re-links them, splitting the customer where the remaining links do not hold.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.declarations import (
    CUSTOMERS_RAW,
    CUSTOMERS_RAW_PII,
    ERASURE_LOG,
    EVENTS,
    IDENTITY_MAP,
    MERGES,
    ORDERS,
    RECORD_STATE,
    declared,
)
from seglake.lakehouse import Lakehouse
from seglake.lakehouse.schema import arrow_rows
from seglake.privacy import canonical_email, email_key, keyed_hash, pseudonymization_key
from seglake.runlog import RunLog, utc_now
from seglake.tables import Registry, registry

log = logging.getLogger(__name__)
# the identity graph's own tables: resolve re-derives a shared customer's rows there
GRAPH_TABLES = frozenset({IDENTITY_MAP, MERGES})
ID_KINDS = ("record_key", "email_hash", "customer_id", "phone_hash", "client_id")


class ErasureError(RuntimeError):
    """The request cannot be carried out as asked."""


@dataclass
class Subject:
    """Every identifier of one data subject, by kind."""

    email_hash: str
    ids: dict[str, set[str]] = field(default_factory=dict)
    # customers that also hold CRM records of other identifiers: their profile rows go, their
    # graph stays for the next resolve to re-link the records released
    shared_keys: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.add("email_hash", [self.email_hash])

    def of(self, kind: str) -> set[str]:
        return self.ids.get(kind, set())

    def add(self, kind: str, values: list[str | None]) -> None:
        self.ids.setdefault(kind, set()).update(v for v in values if v)


@dataclass
class ErasureResult:
    request_id: str
    subject_hash: str
    rows_deleted: dict[str, int]
    landing_files: list[str]
    vacuumed: list[str]
    released: int = 0          # CRM records of other identifiers left to the next resolve
    shared_keys: list[str] = field(default_factory=list)


def _quoted(values: set[str]) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                     for v in sorted(values))


def _like_any(column: str, values: set[str]) -> str:
    return " OR ".join(f"lower(`{column}`) LIKE '%{v.lower().replace(chr(39), '')}%'"
                       for v in sorted(values))


def condition(columns: dict[str, str], subject: Subject, graph: bool = False) -> str | None:
    """SQL predicate for the subject's rows in a table whose ``columns`` hold identifiers
    (``graph``: an identity graph table, where a shared customer's rows stay)."""
    terms = []
    for column, kind in columns.items():
        if kind == "identifier":  # (id_kind, id_value) pairs, as in the identity map
            for k in ID_KINDS:
                if not subject.of(k):
                    continue
                term = f"id_kind = '{k}' AND `{column}` IN ({_quoted(subject.of(k))})"
                if k == "phone_hash":  # a phone can be a household's: only the subject's own
                    keys = subject.of("customer_key") | subject.shared_keys
                    term += f" AND customer_key IN ({_quoted(keys)})" if keys else " AND false"
                terms.append(f"({term})")
            continue
        if kind == "text":  # a raw record: any email, account, cookie or device id inside it
            needles = subject.of("email") | subject.of("customer_id") | subject.of("client_id")
            if needles:
                terms.append(f"({_like_any(column, needles)})")
            continue
        if kind in ("email", "customer_id"):  # customer references are ids or emails
            values = subject.of("email")
            if values:
                terms.append(f"lower(trim(`{column}`)) IN ({_quoted(values)})")
            if kind == "email":
                continue
        values = subject.of(kind)
        if kind == "customer_key" and not graph:  # a shared customer's profile rows go too
            values = values | subject.shared_keys
        if values:
            terms.append(f"`{column}` IN ({_quoted(values)})")
    return " OR ".join(terms) if terms else None


def _distinct(lakehouse: Lakehouse, table: str, where: str | None, column: str) -> list[str]:
    if where is None or not lakehouse.exists(table):
        return []
    return [r[0] for r in lakehouse.read(table).where(where).select(column).distinct().collect()]


def find_subject(lakehouse: Lakehouse, reg: Registry, key: bytes, *,
                 email: str | None = None, customer_key: str | None = None) -> Subject:
    """Gather the subject's identifiers from silver (and the identity map when there is one)."""
    spark = lakehouse.spark
    if customer_key:
        if not lakehouse.exists(IDENTITY_MAP):
            raise ErasureError("--customer-key needs silver.identity_map, which identity "
                               "resolution (seglake resolve) writes; erase by --email instead")
        if not lakehouse.read(IDENTITY_MAP).where(F.col("customer_key") == customer_key) \
                .limit(1).count():
            raise ErasureError(f"no customer with key {customer_key!r} in {IDENTITY_MAP}")
        subject = Subject("")
        subject.add("customer_key", [customer_key])
        _with_identity(lakehouse, subject)
        hashes = sorted(subject.of("email_hash"))
        subject.email_hash = hashes[0] if hashes else ""
    else:
        row = spark.range(1).select(canonical_email(F.lit(email)).alias("e"),
                                    keyed_hash(email_key(F.lit(email)), key).alias("h")).first()
        canonical, hashed = row["e"], row["h"]
        if not canonical:
            raise ErasureError(f"not an email address: {email!r}")
        subject = Subject(hashed)
        subject.add("email", [canonical])
    subject.add("customer_id", _distinct(lakehouse, CUSTOMERS_RAW, condition(
        {"email_hash": "email_hash"}, subject), "source_id"))
    if email and lakehouse.exists(IDENTITY_MAP):
        _with_records(lakehouse, subject)
    for table in reg.values():  # bronze CRM rows carry the raw email next to the account id
        if table.layer != "bronze":
            continue
        emails = [c for c, kind in table.subjects.items() if kind == "email"]
        ids = [c for c, kind in table.subjects.items() if kind == "customer_id"]
        if emails and ids and subject.of("email"):
            where = " OR ".join(f"lower(trim(`{c}`)) IN ({_quoted(subject.of('email'))})"
                                for c in emails)
            for c in ids:
                subject.add("customer_id", _distinct(lakehouse, table.name, where, c))
    accounts = subject.of("customer_id")
    if accounts:
        for column in ("cookie_id", "device_id"):
            subject.add("client_id", _distinct(
                lakehouse, EVENTS, f"user_id IN ({_quoted(accounts)})", column))
    order_where = condition({"customer_email_hash": "email_hash",
                             "customer_id": "customer_id"}, subject)
    subject.add("order_id", _distinct(lakehouse, ORDERS, order_where, "order_id"))
    if subject.of("client_id") and lakehouse.exists(IDENTITY_MAP):  # every cookie known now
        _with_anonymous_keys(lakehouse, subject)
    return subject


def _with_anonymous_keys(lakehouse: Lakehouse, subject: Subject) -> None:
    """The keys the subject's cookies and devices had before they logged in (their visits
    then are the subject's too)."""
    clients = condition({"id_value": "identifier"},
                        Subject("", {"client_id": subject.of("client_id")}))
    subject.add("customer_key", _distinct(lakehouse, IDENTITY_MAP, f"anonymous AND ({clients})",
                                          "customer_key"))


def _with_records(lakehouse: Lakehouse, subject: Subject) -> None:
    """The subject's own CRM records (its email or account ids) and their customers: a
    customer all of whose records are the subject's goes whole (every identifier the map ties
    to it); one that also holds records of other identifiers is shared (see Subject)."""
    own = lakehouse.read(CUSTOMERS_RAW).where(condition(
        {"email_hash": "email_hash", "source_id": "customer_id"}, subject) or "false") \
        .select("record_key", "phone_hash").collect()
    subject.add("record_key", [r["record_key"] for r in own])
    subject.add("phone_hash", [r["phone_hash"] for r in own])
    found = condition({"id_value": "identifier"}, Subject("", {
        k: subject.of(k) for k in ("record_key", "email_hash", "customer_id")}))
    keys = set(_distinct(lakehouse, IDENTITY_MAP, found, "customer_key"))
    members = lakehouse.read(IDENTITY_MAP).where(
        (F.col("id_kind") == "record_key") & F.col("customer_key").isin(*sorted(keys))) \
        .select("id_value", "customer_key").collect() if keys else []
    others = [r for r in members if r["id_value"] not in subject.of("record_key")]
    subject.shared_keys = {r["customer_key"] for r in others}
    subject.released = {r["id_value"] for r in others}
    subject.add("customer_key", sorted(keys - subject.shared_keys))
    _with_identity(lakehouse, subject)


def _with_identity(lakehouse: Lakehouse, subject: Subject) -> None:
    """Add every identifier the identity map ties to the subject's customer keys, and the
    emails of their CRM records as written (bronze holds those spellings)."""
    keys = subject.of("customer_key")
    rows = lakehouse.read(IDENTITY_MAP).where(F.col("customer_key").isin(*sorted(keys))) \
        .select("id_kind", "id_value").collect() if keys else []
    for r in rows:  # id kinds: record_key, email_hash, customer_id, phone_hash, client_id
        subject.add(r["id_kind"], [r["id_value"]])
    records = subject.of("record_key")
    if records and lakehouse.exists(CUSTOMERS_RAW_PII):
        subject.add("email", _distinct(lakehouse, CUSTOMERS_RAW_PII,
                                       f"record_key IN ({_quoted(records)})", "email"))


def subject_tables(lakehouse: Lakehouse, reg: Registry, subject: Subject) -> dict[str, str]:
    """Every existing table the registry says can hold a subject, with the predicate of the
    subject's rows there."""
    tables: dict[str, str] = {}
    for name, columns in reg.erasable().items():
        if not lakehouse.exists(name):
            continue
        present = set(lakehouse.read(name).columns)  # e.g. a bronze corrupt-record column
        where = condition({c: kind for c, kind in columns.items() if c in present}, subject,
                          graph=name in GRAPH_TABLES)
        if where:
            tables[name] = where
    return tables


def erase(spark: SparkSession, config: SeglakeConfig, *, email: str | None = None,
          customer_key: str | None = None, vacuum: bool = False,
          requested_by: str = "cli", reg: Registry | None = None) -> ErasureResult:
    """Delete the subject from every table the registry (default: the configured one) declares
    with subject columns; record the request (keyed hash only) in ops.erasure_log."""
    if bool(email) == bool(customer_key):
        raise ErasureError("give exactly one of --email or --customer-key")
    key = pseudonymization_key(config.privacy)
    reg = reg if reg is not None else registry(config)
    lakehouse = Lakehouse.from_config(spark, config, reg)
    runlog = RunLog(lakehouse, "erase")
    subject = find_subject(lakehouse, reg, key, email=email, customer_key=customer_key)
    tables = subject_tables(lakehouse, reg, subject)
    landing: set[str] = set()
    for name, where in tables.items():
        if reg[name].layer == "bronze":
            landing.update(_distinct(lakehouse, name, where, "_source_file"))
    deleted: dict[str, int] = {}
    for table, where in tables.items():
        before = lakehouse.read(table).count()
        commit = lakehouse.delete(table, where)
        removed = (commit.rows_removed or 0) - (commit.rows_added or 0)
        deleted[table] = removed
        runlog.record(table=table, rows_in=before, rows_out=before - removed,
                      message=f"erasure {runlog.run_id}: {removed} rows of one subject")
    released = 0
    if subject.released and lakehouse.exists(RECORD_STATE):  # "new" to the next resolve
        commit = lakehouse.delete(RECORD_STATE, condition(
            {"record_key": "record_key"}, Subject("", {"record_key": subject.released})))
        released = (commit.rows_removed or 0) - (commit.rows_added or 0)
        runlog.record(table=RECORD_STATE, rows_in=released, rows_out=0,
                      message=f"erasure {runlog.run_id}: {released} records of "
                      f"{len(subject.shared_keys)} shared customer(s) released for re-linking")
        log.warning("%d CRM records of other identifiers shared a customer with the subject: "
                    "kept, and re-linked by the next `seglake resolve` (if they are the "
                    "subject's too, erase them first with --customer-key)", released)
    vacuumed = []
    if vacuum:
        for table in tables:
            lakehouse.vacuum(table, retention_hours=0)
            lakehouse.expire_history(table)  # old commits' file statistics name the subject
            vacuumed.append(table)
    request_id = uuid.uuid4().hex
    entry = (request_id, utc_now(), subject.email_hash, requested_by, sorted(tables),
             sum(deleted.values()), sorted(landing), vacuum)
    lakehouse.append(ERASURE_LOG, arrow_rows([entry], declared(ERASURE_LOG).ddl))
    runlog.flush()
    if landing:
        log.warning("the subject is still in %s landing file(s), which seglake does not "
                    "rewrite: remove it there (listed in ops.erasure_log)", len(landing))
    return ErasureResult(request_id, subject.email_hash, deleted, sorted(landing), vacuumed,
                         released, sorted(subject.shared_keys))
