"""Pseudonymisation: keyed hashes (HMAC-SHA256) of canonical identifiers.

The key comes only from ``SEGLAKE_PSEUDONYMIZATION_KEY``; it is never logged, never written and
never put in a query plan (the hashing runs in a pandas UDF that holds it in its closure).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from seglake.config import PrivacyConfig

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

KEY_VARIABLE = "SEGLAKE_PSEUDONYMIZATION_KEY"
# Public on purpose: demo data only. Hashes made with it protect nothing.
DEMO_KEY = "seglake-demo-key-not-secret"
MIN_KEY_LENGTH = 16
# providers that ignore dots in the local part / that deliver local+tag to local
DOTLESS_DOMAINS = ("gmail.com", "googlemail.com")
TAGGED_DOMAINS = ("gmail.com", "googlemail.com", "outlook.com", "outlook.fr", "hotmail.com",
                  "hotmail.fr", "live.com", "live.fr", "icloud.com", "me.com", "protonmail.com",
                  "proton.me", "fastmail.com")


class PrivacyError(RuntimeError):
    """The pseudonymisation key is missing or unusable."""


def pseudonymization_key(config: PrivacyConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from the environment; the demo key only when ``privacy.demo_mode`` is on."""
    environ = os.environ if environ is None else environ
    key = environ.get(KEY_VARIABLE, "")
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise PrivacyError(f"{KEY_VARIABLE} is shorter than {MIN_KEY_LENGTH} characters; "
                               "use a long random secret (e.g. `openssl rand -hex 32`)")
        return key.encode("utf-8")
    if config.demo_mode:
        log.warning("*** DEMO MODE: %s is not set, pseudonymising with the PUBLIC demo key. "
                    "Hashes made with it protect nothing; never use demo mode on real "
                    "customer data. ***", KEY_VARIABLE)
        return DEMO_KEY.encode("utf-8")
    raise PrivacyError(
        f"{KEY_VARIABLE} is not set: this stage writes pseudonymised identifiers and refuses to "
        "run without the key. Set it from your secret store (e.g. `export "
        f"{KEY_VARIABLE}=$(openssl rand -hex 32)`, kept stable across runs), or set "
        "privacy.demo_mode: true for demo data only.")


def canonical_email(email: Column) -> Column:
    """Trimmed, lower case, inner whitespace removed; null when it cannot be an address."""
    text = F.lower(F.regexp_replace(F.trim(email), r"\s+", ""))
    return F.when(text.rlike(r"^[^@]+@[^@]+\.[^@]+$"), text)


def email_key(col: Column) -> Column:
    """The mailbox an address delivers to: canonical (lower case), ``+tag`` dropped and dots
    removed where the provider ignores them, googlemail.com as gmail.com. Two spellings of one
    mailbox get one key, so they hash alike."""
    email = canonical_email(col)
    local = F.substring_index(email, "@", 1)
    domain = F.substring_index(email, "@", -1)
    domain = F.when(domain == "googlemail.com", F.lit("gmail.com")).otherwise(domain)
    local = F.when(domain.isin(*TAGGED_DOMAINS), F.substring_index(local, "+", 1)) \
        .otherwise(local)
    local = F.when(domain.isin(*DOTLESS_DOMAINS), F.regexp_replace(local, r"\.", "")) \
        .otherwise(local)
    return F.when(email.isNotNull() & (local != ""), F.concat(local, F.lit("@"), domain))


def e164_phone(phone: Column, region: str) -> Column:
    """Phone number in E.164 (+33612345678) with ``phonenumbers``; null when not a number."""

    @pandas_udf("string")
    def to_e164(values: pd.Series) -> pd.Series:
        import phonenumbers

        def one(value: str | None) -> str | None:
            if value is None or not value.strip():
                return None
            try:
                number = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                return None
            if not phonenumbers.is_possible_number(number):
                return None
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

        return values.map(one, na_action="ignore")

    return to_e164(phone)


def keyed_digest(text: str, key: bytes) -> str:
    """HMAC-SHA256 of the UTF-8 text, hex: what keyed_hash computes, for one value."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_hash_macro(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Macro ``keyed_hash(text)`` on a DuckDB connection: keyed_digest in SQL (HMAC per RFC
    2104 over sha256), no Python call per value. The key's pads are bound as parameters into
    a temp table, never written into SQL text."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    con.execute("create or replace temp table _keyed_pads as select $inner::blob i, "
                "$outer::blob o", {"inner": bytes(b ^ 0x36 for b in block),
                                    "outer": bytes(b ^ 0x5C for b in block)})
    con.sql("create or replace temp macro keyed_hash(text) as sha256((select o from "
            "_keyed_pads) || unhex(sha256((select i from _keyed_pads) || encode(text))))")


def keyed_hash(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of the UTF-8 text, hex; null stays null. Canonicalise the value first."""

    @pandas_udf("string")
    def hmac_sha256(values: pd.Series) -> pd.Series:
        return values.map(lambda v: keyed_digest(v, key), na_action="ignore")

    return hmac_sha256(value)


def with_consent(customers: DataFrame, consents: DataFrame | None, emails: DataFrame,
                 purpose: str) -> DataFrame:
    """Latest state of the consent to ``purpose`` over every email of the customer (``emails``:
    identity-map rows id_value -> customer_key); null where no consent was ever recorded."""
    if consents is None:
        return customers.withColumn("marketing_consent", F.lit(None).cast("boolean")) \
            .withColumn("marketing_consent_at", F.lit(None).cast("timestamp"))
    latest = consents.where(F.col("purpose") == purpose) \
        .join(emails.select(F.col("id_value").alias("subject_hash"), "customer_key"),
              "subject_hash") \
        .groupBy("customer_key").agg(F.max_by(F.struct("status", "updated_at"),
                                              F.col("updated_at")).alias("_c"))
    return customers.join(latest, "customer_key", "left") \
        .withColumn("marketing_consent", F.col("_c.status") == "granted") \
        .withColumn("marketing_consent_at", F.col("_c.updated_at")).drop("_c")
