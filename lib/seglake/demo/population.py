"""The demo population: persons with a latent archetype and a true identity, and the CRM rows
two source systems hold about them — with the fuzzy differences real duplicates have."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.demo.archetypes import ARCHETYPES, MIXTURE_SHARE, MIXTURE_WEIGHT, NUMERIC_PARAMETERS
from seglake.demo.draws import Draws, by_archetype, pick
from seglake.demo.vocabulary import (
    ADDRESS_COMPLEMENTS,
    CITIES,
    EMAIL_DOMAINS,
    FEMALE_FIRST_NAMES,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    STREET_NAMES,
    STREET_TYPES,
)

ACCENTED = "àâäáãçéèêëíìîïñóòôöõúùûüÿœæÀÂÄÁÃÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜŸ"
PLAIN = "aaaaaceeeeiiiinooooouuuuyoaAAAAACEEEEIIIINOOOOOUUUUY"
SYSTEMS = ("eshop", "loyalty")
NEW_CUSTOMER_SPAN = 365  # days after the start over which new customers sign up


def fold_accents(col: Column) -> Column:
    """Strip French diacritics (œ/æ become o/a: the lossy way legacy systems do it)."""
    return F.translate(col, ACCENTED, PLAIN)


def persons(spark: SparkSession, draws: Draws, n: int, cross_system_rate: float,
            duplicate_rate: float) -> DataFrame:
    """One row per person: archetype (maybe a mixture), blended behaviour parameters, identity,
    sign-up and churn days (relative to the first observed day), and their CRM accounts."""
    pid = F.col("person_id")
    shares = [a.share for a in ARCHETYPES]
    df = spark.range(n).withColumnRenamed("id", "person_id")
    df = df.withColumn("archetype", draws.index(shares, "archetype", pid))
    mixed = draws.bernoulli(MIXTURE_SHARE, "mixed", pid)
    other = (F.col("archetype") + 1 + draws.index([1.0] * (len(ARCHETYPES) - 1), "arch2", pid)) \
        % len(ARCHETYPES)
    df = df.withColumn("archetype2", F.when(mixed, other)) \
        .withColumn("mix_weight", F.when(mixed, F.lit(MIXTURE_WEIGHT)).otherwise(F.lit(1.0)))
    a1, a2, w = F.col("archetype"), F.coalesce("archetype2", "archetype"), F.col("mix_weight")
    for name in NUMERIC_PARAMETERS:
        values = [getattr(a, name) for a in ARCHETYPES]
        df = df.withColumn(f"p_{name}", w * by_archetype(values, a1)
                           + (1 - w) * by_archetype(values, a2))
    # discrete traits follow the primary archetype
    df = df.withColumn("has_account", draws.uniform("account", pid) < F.col("p_has_account")) \
        .withColumn("home_system", F.when(draws.uniform("home", pid) < F.col("p_store_first"),
                                          "loyalty").otherwise("eshop")) \
        .withColumn("activity", F.exp(0.45 * draws.normal("activity", pid) - 0.1)) \
        .withColumn("favourite_category", draws.index(
            [1.0] * len(ARCHETYPES[0].category_weights), "fav", pid)) \
        .withColumn("email_optin", draws.uniform("optin", pid) < F.col("p_email_optin"))
    is_new = F.col("archetype") == [a.name for a in ARCHETYPES].index("new_customer")
    # new customers keep arriving over a fixed year (not over the window, so a longer run
    # continues the same world)
    new_signup = F.floor(-30 + draws.uniform("signup", pid) * (NEW_CUSTOMER_SPAN + 30))
    signup = F.when(is_new, new_signup) \
        .otherwise(-F.floor(30 + draws.uniform("signup", pid) * 5 * 365))
    df = df.withColumn("signup_day", F.when(F.col("has_account"), signup.cast("int")))
    churn_after = -F.log(1.0 - draws.uniform("churn", pid)) / F.col("p_churn_per_year") * 365
    df = df.withColumn("churn_day", F.floor(F.greatest(F.coalesce("signup_day", F.lit(0)),
                                                       F.lit(0)) + churn_after).cast("int"))
    return _accounts(_identity(df, draws), draws, cross_system_rate, duplicate_rate)


def crm_id(system: Column | str, person_id: Column, slot: int | Column) -> Column:
    """Source-system id of a person's record in a slot: a bijection of (person, slot), so ids
    never collide, and unrelated to the person's identity data."""
    key = person_id * 4 + slot
    eshop = F.concat(F.lit("C"), F.lpad(((key * 7_654_321 + 1_234_567) % 100_000_000)
                                         .cast("string"), 8, "0"))
    loyalty = F.concat(F.lit("29"), F.lpad(((key * 3_141_593 + 2_718_281) % 10_000_000_000)
                                            .cast("string"), 10, "0"))
    if isinstance(system, str):
        return eshop if system == "eshop" else loyalty
    return F.when(system == "eshop", eshop).otherwise(loyalty)


def _accounts(df: DataFrame, draws: Draws, cross_rate: float, duplicate_rate: float) -> DataFrame:
    """Slot 0: the home system's record (at sign-up); slot 1: a record in the other system;
    slot 2: a second account in the home system. Login ids follow from them."""
    pid, signup = F.col("person_id"), F.col("signup_day")
    home_eshop = F.col("home_system") == "eshop"
    cross = F.col("has_account") & draws.bernoulli(cross_rate, "cross", pid)
    dup = F.col("has_account") & draws.bernoulli(duplicate_rate, "dup", pid)
    day1 = signup + F.floor(draws.uniform("lag1", pid) * 400).cast("int")
    day2 = signup + (30 + F.floor(draws.uniform("lag2", pid) * 700)).cast("int")
    eshop, loyalty = "eshop", "loyalty"
    return df.withColumn("cross_record", cross).withColumn("duplicate_record", dup) \
        .withColumn("eshop_id", F.when(F.col("has_account") & home_eshop, crm_id(eshop, pid, 0))
                    .when(cross, crm_id(eshop, pid, 1))) \
        .withColumn("eshop_day", F.when(home_eshop, signup).when(cross, day1)) \
        .withColumn("eshop_dup_id", F.when(dup & home_eshop, crm_id(eshop, pid, 2))) \
        .withColumn("loyalty_id", F.when(F.col("has_account") & ~home_eshop,
                                         crm_id(loyalty, pid, 0))
                    .when(cross, crm_id(loyalty, pid, 1))) \
        .withColumn("loyalty_day", F.when(~home_eshop, signup).when(cross, day1)) \
        .withColumn("record_days", F.array(signup, day1, day2))


def _identity(df: DataFrame, draws: Draws) -> DataFrame:
    pid = F.col("person_id")
    female = draws.bernoulli(0.56, "gender", pid)
    first = F.when(female, draws.choice(*_split(FEMALE_FIRST_NAMES), "first", pid)) \
        .otherwise(draws.choice(*_split(MALE_FIRST_NAMES), "first", pid))
    age = F.least(F.greatest(F.col("p_age_mean") + 12 * draws.normal("age", pid), F.lit(18.0)),
                  F.lit(88.0))
    cities, postcodes, city_weights = zip(*CITIES, strict=True)
    city_index = draws.index(city_weights, "city", pid)
    types, _, type_weights = zip(*STREET_TYPES, strict=True)
    number = (1 + F.floor(draws.uniform("number", pid) ** 2 * 140)).cast("int").cast("string")
    suffix = F.when(draws.bernoulli(0.04, "bis", pid), F.lit(" bis")).otherwise("")
    street = F.concat_ws(" ", F.concat(number, suffix),
                         draws.choice(types, type_weights, "street_type", pid),
                         draws.choice(STREET_NAMES, None, "street", pid))
    complement = F.when(draws.bernoulli(0.12, "complement", pid),
                        draws.choice(ADDRESS_COMPLEMENTS, None, "complement_kind", pid))
    mobile = F.concat(F.lit("+33"), F.when(draws.bernoulli(0.7, "mobile", pid), "6").otherwise("7"),
                      F.lpad(((pid * 48_271 + 12_345) % 100_000_000).cast("string"), 8, "0"))
    df = df.withColumn("gender", F.when(female, "F").otherwise("M")) \
        .withColumn("first_name", first) \
        .withColumn("last_name", draws.choice(*_split(LAST_NAMES), "last", pid)) \
        .withColumn("birth_date", F.date_sub(F.lit("2025-06-30").cast("date"),
                                             F.floor(age * 365.25).cast("int"))) \
        .withColumn("city", pick(cities, city_index)) \
        .withColumn("postcode", pick(postcodes, city_index)) \
        .withColumn("street", street) \
        .withColumn("address_complement", complement) \
        .withColumn("phone", F.when(draws.bernoulli(0.93, "has_phone", pid), mobile))
    return _with_email(df, draws)


def email_local_part(first: Column, last: Column) -> Column:
    """Lower-case ASCII name as people type it in an address: no accents, spaces or quotes."""
    def clean(c: Column) -> Column:
        return F.regexp_replace(F.lower(fold_accents(c)), "[ ']", "")
    return F.concat_ws("|", clean(first), clean(last))


def _with_email(df: DataFrame, draws: Draws) -> DataFrame:
    pid = F.col("person_id")
    parts = F.split(email_local_part(F.col("first_name"), F.col("last_name")), r"\|")
    first, last = parts.getItem(0), parts.getItem(1)
    year = F.date_format("birth_date", "yy")
    patterns = [
        (F.concat_ws(".", first, last), 34), (F.concat(first, last), 10),
        (F.concat(F.substring(first, 1, 1), F.lit("."), last), 14),
        (F.concat(F.concat_ws(".", first, last), year), 14), (F.concat_ws(".", last, first), 8),
        (F.concat_ws("_", first, last), 7),
        (F.concat(first, (10 + draws.uniform("mail_n", pid) * 990).cast("int")), 13),
    ]
    local = pick_columns([p for p, _ in patterns],
                         draws.index([w for _, w in patterns], "mail_pattern", pid))
    domains, weights = _split(EMAIL_DOMAINS)
    base = F.concat(local, F.lit("@"), draws.choice(domains, weights, "domain", pid))
    # real mailboxes are unique: the second "marie.martin@gmail.com" becomes marie.martin.2@…,
    # and Gmail ignores dots, so mariemartin@gmail.com is that same mailbox too
    gmail = F.col("_email").endswith("@gmail.com")
    mailbox = F.when(gmail, F.regexp_replace("_email", r"\.(?=[^@]*@)", "")) \
        .otherwise(F.col("_email"))
    rank = F.row_number().over(Window.partitionBy("_mailbox").orderBy("person_id"))
    unique = F.when(rank == 1, F.col("_email")).otherwise(
        F.regexp_replace("_email", "@", F.concat(F.lit("."), rank.cast("string"), F.lit("@"))))
    return df.withColumn("_email", base).withColumn("_mailbox", mailbox) \
        .withColumn("email", unique).drop("_email", "_mailbox")


def pick_columns(columns: list[Column], index: Column) -> Column:
    result = columns[-1]
    for i in range(len(columns) - 2, -1, -1):
        result = F.when(index == i, columns[i]).otherwise(result)
    return result


def _split(pairs: tuple[tuple, ...]) -> tuple[list, list]:
    values, weights = zip(*pairs, strict=True)
    return list(values), list(weights)


# ---------------------------------------------------------------------------------- CRM rows

def crm_records(persons_df: DataFrame, draws: Draws) -> DataFrame:
    """One row per CRM record (see ``_accounts`` for the slots); records after the first carry
    the fuzzy differences of a person re-entered by hand in another system or account."""
    slot = F.col("slot")
    slots = F.filter(F.array(F.lit(0), F.lit(1), F.lit(2)), lambda s: (s == 0) | (
        (s == 1) & F.col("cross_record")) | ((s == 2) & F.col("duplicate_record")))
    df = persons_df.where("has_account").select(
        "person_id", "gender", "first_name", "last_name", "email", "phone", "birth_date",
        "street", "address_complement", "postcode", "city", "home_system", "record_days",
        F.explode(slots).alias("slot"))
    other = F.when(F.col("home_system") == "eshop", "loyalty").otherwise("eshop")
    df = df.withColumn("system", F.when(slot == 1, other).otherwise(F.col("home_system")))
    key = F.col("person_id") * 4 + slot
    df = df.withColumn("crm_id", crm_id(F.col("system"), F.col("person_id"), slot)) \
        .withColumn("created_day", F.element_at("record_days", slot + 1)) \
        .withColumn("created_seconds", signup_seconds(draws, key))
    return _fuzzy(df, draws, key)


def signup_seconds(draws: Draws, key: Column) -> Column:
    """Local second of the day a record was created (daytime-weighted)."""
    return 7 * 3600 + F.floor(draws.uniform("created_s", key) * 16 * 3600)


def _typo(col: Column, draws: Draws, tag: str, key: Column) -> Column:
    """One keyboard-style slip: drop, double, swap or replace a letter."""
    n = F.length(col)
    k = 2 + F.floor(draws.uniform(tag + ":pos", key) * F.greatest(n - 2, F.lit(1))).cast("int")
    head, ch, nxt = F.substring(col, 1, k - 1), F.substring(col, k, 1), F.substring(col, k + 1, 1)
    rest2 = F.substring(col, k + 2, 1000)
    rest1 = F.substring(col, k + 1, 1000)
    op = F.floor(draws.uniform(tag + ":op", key) * 4)
    replacement = pick(list("aeinorstul"),
                       F.floor(draws.uniform(tag + ":ch", key) * 10).cast("int"))
    typo = F.when(op == 0, F.concat(head, rest1)) \
        .when(op == 1, F.concat(head, ch, ch, rest1)) \
        .when(op == 2, F.concat(head, nxt, ch, rest2)) \
        .otherwise(F.concat(head, replacement, rest1))
    return F.when(n >= 4, typo).otherwise(col)


PHONE_FORMATS = ("+33 6 12 34 56 78", "06 12 34 56 78", "06.12.34.56.78", "0612345678",
                 "+33612345678", "0033 6 12 34 56 78", "06-12-34-56-78")


def format_phone(e164: Column, style: Column) -> Column:
    """French ways of writing one mobile number; ``style`` indexes PHONE_FORMATS."""
    national = F.concat(F.lit("0"), F.substring(e164, 4, 9))
    pairs = r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})"
    tail = F.substring(e164, 5, 8)
    spaced_tail = F.regexp_replace(tail, r"(\d{2})(\d{2})(\d{2})(\d{2})", "$1 $2 $3 $4")
    digit = F.substring(e164, 4, 1)
    options = [
        F.concat(F.lit("+33 "), digit, F.lit(" "), spaced_tail),
        F.regexp_replace(national, pairs, "$1 $2 $3 $4 $5"),
        F.regexp_replace(national, pairs, "$1.$2.$3.$4.$5"),
        national, e164,
        F.concat(F.lit("0033 "), digit, F.lit(" "), spaced_tail),
        F.regexp_replace(national, pairs, "$1-$2-$3-$4-$5"),
    ]
    return pick_columns(options, style)


def _fuzzy(df: DataFrame, draws: Draws, key: Column) -> DataFrame:
    secondary = F.col("slot") > 0
    loyalty = F.col("system") == "loyalty"

    def happens(p: float, tag: str) -> Column:
        return secondary & (draws.uniform(tag, key) < p)

    changes: list[tuple[str, Column]] = [
        ("typo_last_name", happens(0.15, "f_typo_last")),
        ("typo_first_name", happens(0.10, "f_typo_first")),
        ("accents_lost", happens(0.30, "f_accents")
         | (loyalty & draws.bernoulli(0.7, "f_leg", key))),
        ("names_swapped", happens(0.05, "f_swap")),
        ("married_name", happens(0.12, "f_married") & (F.col("gender") == "F")),
        ("email_case", happens(0.15, "f_mail_case")),
        ("email_dots", happens(0.25, "f_mail_dots") & F.col("email").endswith("@gmail.com")),
        ("email_tag", happens(0.08, "f_mail_tag")),
        ("email_domain", happens(0.10, "f_mail_domain")),
        ("email_new", happens(0.10, "f_mail_new")),
        ("email_missing", happens(0.05, "f_mail_missing")),
        ("phone_missing", happens(0.15, "f_phone_missing") | draws.bernoulli(0.04, "f_ph0", key)),
        ("address_abbreviated", happens(0.40, "f_abbrev")),
        ("address_missing", happens(0.06, "f_addr_missing")),
        ("birth_date_missing", happens(0.12, "f_birth_missing")
         | (~loyalty & draws.bernoulli(0.25, "f_birth0", key))),
        ("birth_date_day_month_swapped", happens(0.03, "f_birth_swap")
         & (F.dayofmonth("birth_date") <= 12)),
    ]
    for name, condition in changes:
        df = df.withColumn(f"_c_{name}", condition)
    on = {name: F.col(f"_c_{name}") for name, _ in changes}

    # each step is materialised: an expression that used its input twice per step would
    # otherwise double in size with every step and swamp code generation
    def step(frame: DataFrame, name: str, value: Column) -> DataFrame:
        return frame.withColumn(name, value)

    c = F.col
    df = step(df, "last_name", F.when(on["married_name"],
                                      draws.choice(*_split(LAST_NAMES), "married", key))
              .otherwise(c("last_name")))
    df = step(df, "last_name", F.when(on["typo_last_name"], _typo(c("last_name"), draws,
                                                                  "t_last", key))
              .otherwise(c("last_name")))
    df = step(df, "first_name", F.when(on["typo_first_name"], _typo(c("first_name"), draws,
                                                                    "t_first", key))
              .otherwise(c("first_name")))
    df = df.withColumn("_first", F.when(on["names_swapped"], c("last_name"))
                       .otherwise(c("first_name"))) \
        .withColumn("last_name", F.when(on["names_swapped"], c("first_name"))
                    .otherwise(c("last_name"))) \
        .withColumn("first_name", c("_first")).drop("_first")
    for name in ("first_name", "last_name"):
        df = step(df, name, F.when(on["accents_lost"], fold_accents(c(name))).otherwise(c(name)))
    # the loyalty programme stores the surname in capitals; some web users type in lower case
    lower = ~loyalty & draws.bernoulli(0.06, "lower", key)
    df = step(df, "last_name", F.when(loyalty, F.upper(c("last_name")))
              .when(lower, F.lower(c("last_name"))).otherwise(c("last_name")))
    df = step(df, "first_name", F.when(lower, F.lower(c("first_name"))).otherwise(c("first_name")))

    domains, weights = _split(EMAIL_DOMAINS)

    def local(e: Column) -> Column:
        return F.substring_index(e, "@", 1)

    def domain(e: Column) -> Column:
        return F.substring_index(e, "@", -1)

    e = c("email")
    email_steps = [
        ("email_dots", F.concat(F.regexp_replace(local(e), r"\.", ""), F.lit("@"), domain(e))),
        ("email_tag", F.regexp_replace(e, "@", "+shop@")),
        ("email_domain", F.concat(local(e), F.lit("@"),
                                  draws.choice(domains, weights, "dom2", key))),
        ("email_new", F.concat(
            F.regexp_replace(F.lower(fold_accents(c("last_name"))), "[ ']", ""),
            (100 + draws.uniform("new_mail", key) * 9000).cast("int"), F.lit("@"),
            draws.choice(domains, weights, "dom3", key))),
        ("email_case", F.concat(F.initcap(local(e)), F.lit("@"), domain(e))),
        ("email_missing", F.lit(None).cast("string")),
    ]
    for name, value in email_steps:
        df = step(df, "email", F.when(on[name], value).otherwise(e))

    style = F.when(loyalty, pick([0, 1, 3], F.floor(draws.uniform("ph_l", key) * 3).cast("int"))) \
        .otherwise(F.floor(draws.uniform("ph_e", key) * len(PHONE_FORMATS)).cast("int"))
    df = step(df, "phone", F.when(on["phone_missing"], None)
              .otherwise(format_phone(c("phone"), style)))

    abbreviated = c("street")
    for full, short, _ in STREET_TYPES:
        abbreviated = F.regexp_replace(abbreviated, f"^([0-9]{{1,3}}( bis)? ){full} ",
                                       f"$1{short} ")
    df = step(df, "street", F.when(on["address_abbreviated"], abbreviated).otherwise(c("street")))
    df = step(df, "address", F.concat_ws(", ", c("street"), c("address_complement")))
    df = step(df, "address", F.when(on["address_missing"], None)
              .when(loyalty, F.upper(fold_accents(c("address")))).otherwise(c("address")))
    df = step(df, "birth_date", F.when(on["birth_date_missing"], None)
              .when(on["birth_date_day_month_swapped"], F.make_date(
                  F.year("birth_date"), F.dayofmonth("birth_date"), F.month("birth_date")))
              .otherwise(c("birth_date")))
    variants = F.filter(F.array(*[F.when(on[n], F.lit(n)) for n, _ in changes]),
                        lambda x: x.isNotNull())
    return df.select(
        "person_id", "system", "crm_id", "slot", "created_day", "created_seconds", "gender",
        "first_name", "last_name", "email", "phone", "birth_date", "address", "postcode", "city",
        variants.alias("variants"))

