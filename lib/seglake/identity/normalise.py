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
# per country (ISO 3166 code, identity.country): name particles dropped, and street-type
# spellings -> one word; a country not listed folds accents and case only
_ROMANCE = ("de", "du", "des", "la", "le", "d", "l")
NAME_PARTICLES: dict[str, tuple[str, ...]] = {
    "FR": (*_ROMANCE, "van", "von", "der", "da", "di"), "BE": (*_ROMANCE, "van", "der", "den"),
    "CH": (*_ROMANCE, "von", "der"), "LU": (*_ROMANCE, "von"),
    "DE": ("von", "vom", "zu", "zum", "der", "van"), "AT": ("von", "vom", "zu", "der"),
    "NL": ("van", "de", "der", "den", "ten", "ter", "het", "t"),
    "ES": ("de", "del", "la", "las", "los", "y"), "PT": ("de", "da", "do", "das", "dos", "e"),
    "IT": ("di", "de", "da", "del", "della", "dei", "degli", "lo", "la"),
    "GB": (), "IE": (), "US": (), "CA": (), "AU": (),
}
_FRENCH_STREETS = {
    "rue": ("r",), "avenue": ("av", "ave", "avn"), "boulevard": ("bd", "bld", "boul", "blvd"),
    "place": ("pl",), "allee": ("all", "al"), "impasse": ("imp",), "chemin": ("ch", "chem"),
    "quai": ("qu", "qai"), "route": ("rte",), "square": ("sq",), "faubourg": ("fg", "fbg"),
    "residence": ("res", "resid"), "batiment": ("bat",), "saint": ("st",), "sainte": ("ste",),
}
_ENGLISH_STREETS = {
    "street": ("st", "str"), "road": ("rd",), "avenue": ("av", "ave"), "lane": ("ln",),
    "drive": ("dr", "drv"), "crescent": ("cres", "cr", "cresc"), "place": ("pl",),
    "court": ("ct",), "square": ("sq",), "terrace": ("tce", "terr"), "parade": ("pde",),
    "boulevard": ("blvd", "bvd"), "close": ("cl",), "highway": ("hwy",), "north": ("n",),
    "south": ("s",), "east": ("e",), "west": ("w",), "apartment": ("apt",),
}
_GERMAN_STREETS = {"strasse": ("str", "st"), "platz": ("pl",), "weg": ("wg",),
                   "allee": ("al",)}
STREET_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "FR": _FRENCH_STREETS, "BE": _FRENCH_STREETS, "LU": _FRENCH_STREETS,
    "GB": _ENGLISH_STREETS, "IE": _ENGLISH_STREETS, "US": _ENGLISH_STREETS,
    "CA": _ENGLISH_STREETS, "AU": _ENGLISH_STREETS, "NZ": _ENGLISH_STREETS,
    "DE": _GERMAN_STREETS, "AT": _GERMAN_STREETS, "CH": _GERMAN_STREETS,
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


def name_key(col: Column, country: str = "FR") -> Column:
    """A person's name for comparison: folded, hyphens and apostrophes as spaces, the
    country's particles (de, le, d'…; von; van…) dropped — "de La Fontaine" and
    "LAFONTAINE" differ only by a space."""
    particles = NAME_PARTICLES.get(country.upper(), ())
    text = folded(col)
    return F.nullif(_without_words(text, particles) if particles else text, F.lit(""))


def address_key(col: Column, country: str = "FR") -> Column:
    """Street address for comparison: folded, the country's street types spelled one way
    (av. -> avenue)."""
    text = folded(col)
    for word, spellings in STREET_TYPES.get(country.upper(), {}).items():
        text = F.regexp_replace(text, r"\b(" + "|".join(spellings) + r")\b", word)
    return F.nullif(text, F.lit(""))


def code_key(col: Column) -> Column:
    """A postcode or identifier for comparison: upper case, without spaces, hyphens, dots or
    slashes ("75 011", "ab-12.34" -> "75011", "AB1234")."""
    return F.nullif(F.upper(F.regexp_replace(col, r"[\s\-./]", "")), F.lit(""))
