"""Quality measures: every kind of declared expectation measured in one Spark pass gives what
Great Expectations' own validation gives on the same rows, batch by batch."""

from __future__ import annotations

from collections import Counter

import pytest

from seglake.refine.quality import GX_TYPES, gx_expectation, measures
from seglake.tables import expect

# one of each kind, with GX's options: mostly, strict bounds, how compound rows are ignored
RULES = [
    expect("not_null", "email"),
    expect("not_null", "city", mostly=0.5),
    expect("unique", "order_id"),
    expect("unique_together", "subject", "purpose"),
    expect("unique_together", "subject", "purpose", ignore_row_if="any_value_is_missing"),
    expect("unique_together", "subject", "purpose", ignore_row_if="never"),
    expect("in_set", "channel", value_set=["web", "app"]),
    expect("between", "amount", min_value=0, max_value=100),
    expect("between", "amount", min_value=0, strict_min=True),
    expect("between", "quantity", min_value=1, mostly=0.6),
    expect("regex", "email", regex=r"^[a-z]+@[a-z]+\.com$"),
]
ROWS = [  # batch, order_id, email, city, subject, purpose, channel, amount, quantity
    (1, "o1", "ann@shop.com", "Lyon", "s1", "email", "web", 10.0, 1),
    (1, "o2", None, None, "s1", "email", "app", 0.0, 0),
    (1, "o2", "BOB@shop.com", None, "s2", None, "fax", 120.0, 2),
    (1, None, "cy@shop", "Nice", "s2", None, None, None, None),
    (1, None, "dee@shop.com", "Pau", None, None, "web", -1.0, 3),
    (1, "o3", "eve@shop.com", "Pau", None, None, "web", 100.0, 0),
    (2, "o1", "ann@shop.com", "Lyon", "s1", "email", "web", 5.0, 1),  # other batch: not a dup
    (2, "o4", "fay@shop.com", "Lyon", "s3", "sms", "web", 50.0, 2),
    (2, "o5", "gil@shop.com", "Lyon", "s4", "sms", "web", 50.0, 4),
]
SCHEMA = ("batch INT, order_id STRING, email STRING, city STRING, subject STRING, "
          "purpose STRING, channel STRING, amount DOUBLE, quantity INT")


def gx_results(df) -> list:
    """GX's own validation of RULES on ``df`` (SUMMARY results, in RULES' order)."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_spark("s").add_dataframe_asset("a") \
        .add_batch_definition_whole_dataframe("b")
    suite = context.suites.add(gx.ExpectationSuite(
        name="rules", expectations=[gx_expectation(e) for e in RULES]))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    by_config = {r.expectation_config.id: r for r in result.results}
    return [by_config[e.id] for e in suite.expectations]


def test_measures_equal_great_expectations_own_validation_batch_by_batch(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    ours = measures(df, RULES, by="batch", groups=[1, 2, 3])
    theirs = gx_results(df.where("batch = 1"))
    failures = 0
    for m, r in zip(ours[1], theirs, strict=True):
        what = m.rule.describe()
        assert r.expectation_config.type == GX_TYPES[m.rule.kind], what
        assert m.success == r.success, what
        assert m.element_count == r.result["element_count"], what
        assert m.unexpected_count == r.result["unexpected_count"], what
        assert m.unexpected_percent == pytest.approx(r.result["unexpected_percent"]), what
        if not m.success:  # the examples are the unexpected values (order aside)
            failures += 1
            key = repr if len(m.rule.columns) == 1 else lambda v: repr(sorted(v.items()))
            assert Counter(map(key, m.examples)) == \
                Counter(map(key, r.result["partial_unexpected_list"])), what
    assert failures >= 8  # the rows break most rules: the comparison has teeth
    # batch 2 judged on its own rows: its o1 is no duplicate of batch 1's
    assert all(m.success for m in ours[2]) and ours[2][0].element_count == 3
    assert [m.element_count for m in ours[3]] == [0] * len(RULES)  # a batch with no rows
    assert all(m.success for m in ours[3])  # is vacuously fine, as in GX


def test_one_pass_for_all_batches(spark):
    """The measures of a candidate cost one aggregation whatever the number of its batches."""
    df = spark.createDataFrame(  # 120 rows that pass every rule
        [(2, f"o{i}", "ann@shop.com", "Lyon", f"s{i}", "sms", "web", 5.0, 1) for i in range(120)],
        SCHEMA)
    sc = spark.sparkContext
    before = sc._jsc.sc().dagScheduler().nextJobId()
    found = measures(df, RULES, by="batch", groups=[2])
    jobs = sc._jsc.sc().dagScheduler().nextJobId() - before
    assert all(m.success for m in found[2]) and found[2][0].element_count == 120
    assert jobs <= 4  # AQE runs the shuffle stages of the windows as jobs of their own
