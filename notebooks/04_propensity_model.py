# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Purchase propensity and churn
# MAGIC The champion models' holdout metrics (a tuned random forest against its challengers), their
# MAGIC most important features, lift by decile, and the scores of today's customers by tier — then
# MAGIC the persisted model, loaded and applied again.

# COMMAND ----------

from pyspark.sql import functions as F

from seglake.notebooks import notebook_context, show

config, spark, lake = notebook_context()  # SEGLAKE_CONFIG; Databricks' session there
if "display" not in globals():  # Databricks provides display()
    display = show

# COMMAND ----------

# MAGIC %md ## Holdout metrics and feature importances

# COMMAND ----------

import json

from seglake.models import latest_model

models = {kind: latest_model(lake, kind) for kind in ("propensity", "churn")}
metrics = {kind: json.loads(row["metrics"]) for kind, row in models.items()}
for kind, m in metrics.items():
    print(f"{kind} v{models[kind]['version']}: ROC-AUC {m['roc_auc']:.3f}, "
          f"PR-AUC {m['pr_auc']:.3f}, F1 {m['f1']:.3f} at threshold {m['threshold']:.3f}")
importances = sorted(metrics["propensity"]["importances"].items(), key=lambda kv: -kv[1])
for name, value in importances[:15]:
    print(f"  {name:<32} {value:.3f}")

# COMMAND ----------

# MAGIC %md ## Lift and capture by decile

# COMMAND ----------

deciles = spark.createDataFrame(metrics["propensity"]["deciles"])
display(deciles.orderBy("decile"))

# COMMAND ----------

# MAGIC %md ## Today's scores by tier

# COMMAND ----------

scores = lake.read("gold.customer_scores")
latest = scores.agg(F.max("as_of")).first()[0]
tiers = scores.where(F.col("as_of") == latest).groupBy("propensity_tier").agg(
    F.count("*").alias("customers"),
    F.round(F.avg("propensity_probability"), 3).alias("mean_probability"),
    F.min("propensity_score").alias("min_score"), F.max("propensity_score").alias("max_score"))
display(tiers.orderBy(F.desc("max_score")))

# COMMAND ----------

# MAGIC %md ## The persisted model, loaded and applied again
# MAGIC The pipeline saved by `seglake score` (its path is the model's artifact in `ops.models`)
# MAGIC gives the same probabilities when applied to the same features.

# COMMAND ----------

from pyspark.ml import PipelineModel

from seglake.behaviour import feature_catalogue
from seglake.scoring import model as rf

pipeline = PipelineModel.load(json.loads(models["propensity"]["artifact"])["pipeline"])
inputs = rf.model_inputs(feature_catalogue(config.features), config.scoring)
features = lake.read("gold.customer_features").where(F.col("as_of") == latest)
again = rf.scored(pipeline, rf.prepared(features, inputs)) \
    .select("customer_key", F.col(rf.PROBABILITY).alias("again"))
compared = scores.where(F.col("as_of") == latest).join(again, "customer_key")
max_difference = compared.agg(
    F.max(F.abs(F.col("propensity_probability") - F.col("again")))).first()[0]
print(f"{compared.count():,} customers re-scored; largest difference {max_difference:.2e}")
