"""Rule segments: the rule checker refuses what is not a pure row expression over features,
priorities and tags assign as documented, and the stage covers every customer."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from seglake import cli
from seglake.behaviour import feature_catalogue
from seglake.config import FeaturesConfig, SeglakeConfig
from seglake.declarations import FEATURES, RULE_SEGMENTS
from seglake.lakehouse import Lakehouse
from seglake.segments import (
    RuleError,
    RuleSet,
    SegmentError,
    check_rules,
    load_rules,
    rule_segments,
    run_segment,
)
from seglake.segments.rules import check_boolean, rule_columns

CATALOGUE = feature_catalogue(FeaturesConfig())


@pytest.mark.parametrize("rule, message", [
    ("email_opened_7days >= 3", r"rule 'r': unknown column 'email_opened_7days' \(did you "
                                r"mean email_opened_7d"),
    ("reflect('java.lang.Runtime', 'getRuntime') IS NULL", r"rule 'r': function reflect\(\)"),
    ("java_method('java.lang.System', 'exit', 0) = 0", r"function java_method\(\)"),
    ("my_udf(frequency_30d) > 1", r"function my_udf\(\)"),
    ("frequency_30d IN (SELECT 1)", "subquery|IN \\(subquery\\)"),
    ("EXISTS (SELECT * FROM gold.customer_features)", "not allowed"),
    ("f.frequency_30d > 1", "names a table"),
    ("datediff(current_date(), first_seen_at) > 30", r"function (date_?diff|current_date)"),
    ("frequency_30d = 1; DROP TABLE gold.customer_features", "not allowed"),
    ("frequency_30d = 1 OR", "not a valid expression"),
])
def test_checker_refuses_and_names_the_rule_and_the_part(rule, message):
    with pytest.raises(RuleError, match=message):
        rule_columns("r", rule, CATALOGUE)


@pytest.mark.parametrize("rule, message", [
    ("frequency_7d + 1", r"rule 'r': gives a value \(frequency_7d \+ 1\), not true/false"),
    ("frequency_30d", "gives the bigint column frequency_30d, not true/false"),
    ("'champions'", "not true/false"),
])
def test_a_rule_that_is_not_a_condition_is_refused_without_spark(rule, message):
    from seglake.segments.rules import RuleSet

    rules = RuleSet.model_validate({"segments": [{"name": "r", "rule": rule}], "tags": []})
    with pytest.raises(RuleError, match=message):
        check_rules(rules, CATALOGUE)


def test_checker_accepts_row_expressions_and_lists_their_columns():
    rule = ("email_opened_7d >= 3 AND lower(top_category) = 'mode-femme' AND "
            "coalesce(frequency_30d, 0) = 0 AND days_since_last_visit BETWEEN 30 AND 90 "
            "AND CASE WHEN is_anonymous THEN false ELSE true END "
            "AND rfm_segment IN ('Lost', 'Hibernating')")
    assert rule_columns("r", rule, CATALOGUE) == [
        "days_since_last_visit", "email_opened_7d", "frequency_30d", "is_anonymous",
        "rfm_segment", "top_category"]


def test_default_rules_are_valid_and_cover_the_issue_examples():
    rules = load_rules("conf/segments.yaml")
    used = check_rules(rules, CATALOGUE)
    names = {r.name for r in rules.segments}
    assert {"cart_abandon_winback", "high_intent_no_purchase",
            "dormant_subscriber_reactivation", "champions", "lost"} <= names
    assert used["cart_abandon_winback"] and "rfm_segment" in used["cant_lose_them"]


def test_rules_file_errors_are_clear(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - {name: Big Spenders, rule: 'monetary_total > 1'}\n")
    with pytest.raises(RuleError, match="lower case"):
        load_rules(bad)
    bad.write_text("segments:\n  - {name: a, rule: 'true'}\ntags:\n  - {name: a, rule: 'true'}\n")
    with pytest.raises(RuleError, match="used twice"):
        load_rules(bad)
    with pytest.raises(RuleError, match="not found"):
        load_rules(tmp_path / "missing.yaml")


def test_priorities_fallback_and_tags(spark):
    features = spark.createDataFrame(
        [("c1", 5, 0.9, None), ("c2", 5, 0.1, 3), ("c3", 0, 0.9, 1), ("c4", 0, 0.0, None)],
        "customer_key STRING, orders INT, score DOUBLE, views INT") \
        .withColumn("as_of", F.current_date())
    rules = RuleSet.model_validate({
        "segments": [{"name": "buyers", "rule": "orders > 0", "priority": 1},
                     {"name": "hot", "rule": "score > 0.5", "priority": 5},
                     {"name": "hot_too", "rule": "score > 0.8", "priority": 5},
                     {"name": "viewers", "rule": "views >= 1", "priority": 0}],
        "tags": [{"name": "t_views", "rule": "views > 2"}, {"name": "t_buy", "rule": "orders > 0"}],
        "fallback": "rest"})
    got = {r["customer_key"]: (r["rule_segment"], r["tags"])
           for r in rule_segments(features, rules).collect()}
    # c1: hot and hot_too tie at 5 -> the one listed first; a null 'views' matches nothing
    assert got == {"c1": ("hot", ["t_buy"]), "c2": ("buyers", ["t_views", "t_buy"]),
                   "c3": ("hot", []), "c4": ("rest", [])}
    with pytest.raises(RuleError, match="'sum_rule': is int, not true/false"):
        check_boolean(features, RuleSet.model_validate(
            {"segments": [{"name": "sum_rule", "rule": "orders + 1"}]}))


def test_segment_stage_on_the_small_world(spark, config, segmented):
    result = segmented
    lake = Lakehouse.from_config(spark, config)
    features = lake.read(FEATURES).where(F.col("as_of") == result.as_of)
    out = lake.read(RULE_SEGMENTS).where(F.col("as_of") == result.as_of)
    assert out.count() == result.rows == features.count()
    assert out.select("customer_key").distinct().count() == result.rows
    joined = out.join(features, ["customer_key", "as_of"])
    # the RFM segments agree with the map; anonymous visitors never land in a buyer segment
    assert joined.where("rule_segment = 'champions' AND rfm_segment <> 'Champions'").count() == 0
    assert joined.where("is_anonymous AND rule_segment IN ('champions', 'loyal', 'lost', "
                        "'prospects')").count() == 0
    assert result.segments["anonymous_browsers"] > 0 and result.segments["champions"] > 0
    assert sum(result.segments.values()) == result.rows
    # a rerun replaces the date's rows (clusters have their own re-run test)
    rules_only = config.model_copy(update={"clustering": config.clustering.model_copy(
        update={"enabled": False})})
    assert run_segment(spark, rules_only, as_of=result.as_of).clusters is None
    assert lake.read(RULE_SEGMENTS).where(F.col("as_of") == result.as_of).count() == result.rows


def test_segment_refuses_a_bad_rules_file_before_reading_data(tmp_path, capsys):
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - {name: x, rule: \"reflect('a', 'b') = 1\"}\n")
    cfg = SeglakeConfig.model_validate({"segments": {"rules_file": str(bad)},
                                        "lakehouse": {"root": str(tmp_path / "none")}})
    with pytest.raises(SegmentError, match=r"rule 'x': function reflect\(\)"):
        run_segment(None, cfg)  # type: ignore[arg-type]  # fails before Spark is touched
    config_file = tmp_path / "seglake.yaml"
    config_file.write_text(f"segments: {{rules_file: {bad}}}\n")
    assert cli.main(["segment", "--check", "--config", str(config_file)]) == 2
    assert "rule 'x'" in capsys.readouterr().err
