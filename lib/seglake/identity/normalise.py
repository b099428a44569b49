"""Comparison forms of identity attributes: what two records of one person have in common even
when typed differently. Originals stay in the PII table for display; these forms only feed
linkage."""

from __future__ import annotations

import unicodedata

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

# letters NFKD does not decompose
LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o",
                           "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"})
NAME_PARTICLES = ("de", "du", "des", "la", "le", "d", "l", "van", "von", "der", "da", "di")
# street-type spellings -> one word (French addresses)
STREET_TYPES = {
    "rue": ("r",), "avenue": ("av", "ave", "avn"), "boulevard": ("bd", "bld", "boul", "blvd"),
    "place": ("pl",), "allee": ("all", "al"), "impasse": ("imp",), "chemin": ("ch", "chem"),
    "quai": ("qu", "qai"), "route": ("rte",), "square": ("sq",), "faubourg": ("fg", "fbg"),
    "residence": ("res", "resid"), "batiment": ("bat",), "saint": ("st",), "sainte": ("ste",),
}



def fold_text(value: str | None) -> str | None:
    """Accents and ligatures folded to ASCII, lower case, punctuation to spaces, spaces
    collapsed; None when nothing is left."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", value.translate(LIGATURES))
    text = "".join(c if c.isalnum() else " " for c in text if not unicodedata.combining(c))
    text = " ".join(text.lower().split())
    return text or None


@pandas_udf(StringType())  # a type object: a DDL string would need a session at import
def _fold(values: pd.Series) -> pd.Series:
    return values.map(fold_text, na_action="ignore")


def folded(col: Column) -> Column:
    """``fold_text`` in Spark (a pandas UDF: Spark SQL has no accent folding)."""
    return _fold(col)


def _without_words(col: Column, words: tuple[str, ...]) -> Column:
    pattern = r"\b(" + "|".join(words) + r")\b"
    return F.trim(F.regexp_replace(F.regexp_replace(col, pattern, " "), r"\s+", " "))


def name_key(col: Column) -> Column:
    """A person's name for comparison: folded, hyphens and apostrophes as spaces, particles
    (de, le, d'…) dropped — "de La Fontaine" and "LAFONTAINE" differ only by a space."""
    return F.nullif(_without_words(folded(col), NAME_PARTICLES), F.lit(""))


def address_key(col: Column) -> Column:
    """Street address for comparison: folded, street types spelled one way (av. -> avenue)."""
    text = folded(col)
    for word, spellings in STREET_TYPES.items():
        text = F.regexp_replace(text, r"\b(" + "|".join(spellings) + r")\b", word)
    return F.nullif(text, F.lit(""))


def postcode_key(col: Column) -> Column:
    """Postcode without spaces, upper case."""
    return F.nullif(F.upper(F.regexp_replace(col, r"[\s\-]", "")), F.lit(""))
