# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Measure a campaign
# MAGIC Who was held out of each segment, then the lift of the treatment group over its holdout
# MAGIC after the day the campaign went out: conversion, revenue per customer and email opens,
# MAGIC with intervals — what `seglake measure` writes to `gold.segment_lift`.

# COMMAND ----------

from pyspark.sql import functions as F

from seglake.notebooks import notebook_context, show

config, spark, lake = notebook_context()  # SEGLAKE_CONFIG; Databricks' session there
if "display" not in globals():  # Databricks provides display()
    display = show

# COMMAND ----------

# MAGIC %md ## Holdout groups of the latest publish
# MAGIC Drawn once per member (a salted hash, `activation.holdout_share` per kind) and kept while
# MAGIC the customer stays in the segment; the exports carry the treatment group only.

# COMMAND ----------

assignments = lake.read("gold.segment_assignments")
published = assignments.agg(F.max("as_of")).first()[0]
groups = assignments.where(F.col("as_of") == published).groupBy("kind", "segment").agg(
    F.count("*").alias("members"),
    F.sum((F.col("group") == "holdout").cast("int")).alias("holdout"))
display(groups.where(F.col("kind") == "rule").orderBy(F.desc("members")))

# COMMAND ----------

# MAGIC %md ## Lift after the campaign
# MAGIC The campaign went out on `activated_on` (here: the day of the latest publish that has
# MAGIC outcomes after it); the groups compared are the assignments on or before that day.

# COMMAND ----------

from seglake.measure import run_measure

result = run_measure(spark, config)  # or activated_on=date, window_days=..., segment="rule:..."
print(f"activated on {result.activated_on}, groups as of {result.assigned_as_of}, "
      f"{result.window_days} days of outcomes")
lift = lake.read("gold.segment_lift").where(F.col("activated_on") == result.activated_on)
conversion = lift.where((F.col("metric") == "conversion") & (F.col("kind") == "rule")).select(
    "segment", "n_treatment", "n_holdout", F.round("treatment_value", 3).alias("treatment"),
    F.round("holdout_value", 3).alias("holdout"), F.round("difference", 3).alias("lift"),
    F.round("ci_low", 3).alias("ci_low"), F.round("ci_high", 3).alias("ci_high"),
    F.round("p_value", 4).alias("p_value"))
display(conversion.orderBy("p_value"))

# COMMAND ----------

# MAGIC %md ## Which segments moved
# MAGIC A lift is significant when its interval leaves out 0. With a 10% holdout a small segment
# MAGIC has few holdout members: its interval is wide, and revenue (heavy-tailed) gets an interval
# MAGIC only from `activation.min_group_size` members per group.

# COMMAND ----------

significant = [(r["kind"], r["segment"], r["metric"], r["difference"]) for r in lift.collect()
               if r["ci_low"] is not None and (r["ci_low"] > 0 or r["ci_high"] < 0)]
for kind, segment, metric, difference in significant:
    print(f"  {kind}:{segment} {metric}: {difference:+.3f}")
print(f"{len(significant)} of {lift.count()} lifts significant at "
      f"{config.activation.confidence:.0%}")

# COMMAND ----------

# MAGIC %md ## Whom to target next: uplift
# MAGIC Where a campaign moved conversion, `seglake measure` fits an uplift model (a forest per
# MAGIC group; uplift = the difference of their conversion chances). The Qini coefficient judges
# MAGIC its cross-fitted ranking on the campaign's own outcomes, against ranking by propensity:
# MAGIC the customers who buy anyway are not the ones a campaign moves.

# COMMAND ----------

models = [(u.kind, u.segment, u.n_treatment, u.n_holdout, round(u.qini, 4),
           None if u.qini_propensity is None else round(u.qini_propensity, 4))
          for u in result.uplift]
for kind, segment, n_t, n_h, qini, qini_propensity in models:
    print(f"  {kind}:{segment} ({n_t}/{n_h}): Qini {qini:+.4f}, by propensity {qini_propensity}")
if not models:
    print("no uplift model: no segment's conversion moved significantly with "
          f"{config.activation.min_group_size} members in each group")
else:
    top = lake.read("gold.customer_uplift").where(
        F.col("model_version") == result.uplift[0].version).orderBy(F.desc("uplift"))
    display(top.select("customer_key", "segment", F.round("uplift", 3).alias("uplift"),
                       F.round("treatment_probability", 3).alias("if sent"),
                       F.round("holdout_probability", 3).alias("if not")).limit(20))
