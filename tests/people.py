"""A person register built unlike the demo world, to judge identity defaults on data seglake's
generator did not make: names made of syllables with a Zipf-like skew (an open vocabulary, not
the demo's French lists), four-digit postcodes, a national id on most records, no email or
phone, holes in some persons' every record, and every duplicate with one defect in one
field — a typo (substitution, insertion,
deletion, transposition), a gap, or for dates a day/month swap — as in FEBRL-style benchmarks.
"""

from __future__ import annotations

import datetime as dt
import random

ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kl", "l", "m", "n",
          "p", "pr", "r", "s", "sh", "st", "t", "tr", "v", "w", "z")
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ie", "oo", "y")
CODAS = ("", "", "n", "r", "s", "l", "th", "ck", "m", "nd", "tt")
STREETS = ("road", "street", "avenue", "lane", "crescent", "drive", "place", "parade")
COLUMNS = ("record_key", "first_name", "last_name", "birth_date", "postcode", "city", "address",
           "shared_id", "email", "phone", "person_id")
GAPS = {"first_name": 0.03, "last_name": 0.02, "birth_date": 0.12, "postcode": 0.04,
        "address": 0.05}  # share of persons whose every record lacks the field
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS)
                   for _ in range(syllables))


def _vocabulary(rng: random.Random, size: int, syllables: tuple[int, ...]) -> list[str]:
    words: list[str] = []
    seen = set()
    while len(words) < size:
        w = _word(rng, rng.choice(syllables))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _zipf(rng: random.Random, words: list[str], s: float) -> str:
    """A word by rank-frequency skew ``s``: 0.6 over 750 first names gives the commonest 3% of
    people, 0.5 over 3,000 surnames 1% (about as in national name statistics)."""
    weights = [1 / (i + 1) ** s for i in range(len(words))]
    return rng.choices(words, weights)[0]


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text + rng.choice(LETTERS)
    i = rng.randrange(len(text) - 1)
    kind = rng.choice(("substitute", "insert", "delete", "transpose"))
    if kind == "substitute":
        repl = rng.choice(LETTERS if text[i].isalpha() else "0123456789")
        return text[:i] + repl + text[i + 1:]
    if kind == "insert":
        return text[:i] + rng.choice(LETTERS if text[i].isalpha() else "0123456789") + text[i:]
    if kind == "delete":
        return text[:i] + text[i + 1:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _defect(rng: random.Random, record: dict, field: str) -> None:
    value = record[field]
    if value is None:
        return
    if rng.random() < 0.25:
        record[field] = None  # a gap
    elif field == "birth_date":
        if value.day <= 12 and rng.random() < 0.5:
            record[field] = value.replace(day=value.month, month=value.day)
        else:
            record[field] = value + dt.timedelta(days=rng.choice((-1, 1, 10, -10, 365)))
    else:
        record[field] = _typo(rng, value)


def people(persons: int, seed: int = 7, with_id: float = 0.7) -> list[tuple]:
    """Rows of COLUMNS: ``persons`` people, 0 to 3 duplicates each (about 1.6 records per
    person), every duplicate with exactly one defective field; ``with_id``: the share of persons
    with a national id; ``person_id`` is the truth."""
    rng = random.Random(seed)
    firsts = _vocabulary(rng, max(200, persons // 8), (1, 2, 2, 3))
    lasts = _vocabulary(rng, max(500, persons // 2), (2, 2, 3))
    towns = [(f"{rng.randrange(1000, 9999):04d}", _word(rng, 2).title()) for _ in
             range(max(50, persons // 40))]
    rows = []
    for p in range(persons):
        postcode, city = rng.choice(towns)
        base = {
            "first_name": _zipf(rng, firsts, 0.6).title(),
            "last_name": _zipf(rng, lasts, 0.5).title(),
            "birth_date": dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(60 * 365)),
            "postcode": postcode, "city": city,
            "address": f"{rng.randrange(1, 300)} {_word(rng, 2)} {rng.choice(STREETS)}",
            "shared_id": f"{rng.randrange(10**6, 10**7)}" if rng.random() < with_id else None,
        }
        for column, share in GAPS.items():  # registers have holes in originals too
            if rng.random() < share:
                base[column] = None
        copies = rng.choices((0, 1, 2, 3), (0.55, 0.3, 0.1, 0.05))[0]
        for c in range(copies + 1):
            record = dict(base)
            if c:
                _defect(rng, record, rng.choice(("first_name", "last_name", "birth_date",
                                                  "postcode", "address", "shared_id")))
            rows.append((f"reg:{p}-{c}", record["first_name"], record["last_name"],
                         record["birth_date"], record["postcode"], record["city"],
                         record["address"], record["shared_id"], None, None, f"p{p}"))
    rng.shuffle(rows)
    return rows


SCHEMA = ("record_key STRING, first_name STRING, last_name STRING, birth_date DATE, "
          "postcode STRING, city STRING, address STRING, shared_id STRING, email STRING, "
          "phone STRING, person_id STRING")
