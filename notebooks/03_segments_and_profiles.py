# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Segments and profiles
# MAGIC The published segments (rule, RFM, cluster), the cluster profiles behind the names, how rule
# MAGIC segments and clusters overlap, and the customers in two dimensions.

# COMMAND ----------

from pyspark.sql import functions as F

from seglake.notebooks import notebook_context, show

config, spark, lake = notebook_context()  # SEGLAKE_CONFIG; Databricks' session there
if "display" not in globals():  # Databricks provides display()
    display = show

# COMMAND ----------

# MAGIC %md ## Segment summary at the latest as_of

# COMMAND ----------

summary = lake.read("gold.segment_summary")
as_of = summary.agg(F.max("as_of")).first()[0]
current = summary.where(F.col("as_of") == as_of)
display(current.select("kind", "segment", "customers", "share", "revenue_share", "consenting",
                       "entered", "left").orderBy("kind", F.desc("customers")))

# COMMAND ----------

# MAGIC %md ## Cluster profiles: mean z-score per input

# COMMAND ----------

profiles = lake.read("gold.cluster_profiles")
version = profiles.agg(F.max("model_version")).first()[0]
profile = profiles.where(F.col("model_version") == version) \
    .select("cluster", "cluster_name", "customers", "revenue_share",
            F.explode("z").alias("feature", "z"))
display(profile.groupBy("cluster", "cluster_name", "customers").pivot("feature").agg(
    F.round(F.first("z"), 2)).orderBy("cluster"))

# COMMAND ----------

# MAGIC %md ## Rule segments against clusters

# COMMAND ----------

segments = lake.read("gold.customer_segments")
crosstab = segments.where(F.col("cluster").isNotNull()) \
    .groupBy("rule_segment").pivot("cluster").count().na.fill(0)
display(crosstab.orderBy("rule_segment"))

# COMMAND ----------

# MAGIC %md ## Customers in two dimensions (PCA of the scaled inputs)

# COMMAND ----------

import matplotlib.pyplot as plt

points = lake.read("gold.customer_clusters").where(F.col("model_version") == version) \
    .select("cluster_name", "pca_x", "pca_y").limit(5000).toPandas()
fig, ax = plt.subplots(figsize=(7, 5))
for name, group in points.groupby("cluster_name"):
    ax.scatter(group["pca_x"], group["pca_y"], s=5, alpha=0.6, label=name)
ax.legend(fontsize=7)
plt.show()
