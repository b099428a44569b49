# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · The lakehouse and data quality
# MAGIC Every table of the bronze / silver / gold / ops layers with its Delta version and rows, what
# MAGIC the quality gates checked, what was quarantined and why, and what each stage did
# MAGIC (`ops.run_log`). Runs on Databricks as is (`spark` is given there) and locally against the
# MAGIC demo lakehouse (`make demo` first).

# COMMAND ----------

from pyspark.sql import functions as F

from seglake.notebooks import notebook_context, show

config, spark, lake = notebook_context()  # SEGLAKE_CONFIG; Databricks' session there
if "display" not in globals():  # Databricks provides display()
    display = show

# COMMAND ----------

# MAGIC %md ## Tables, versions and rows

# COMMAND ----------

tables = spark.createDataFrame(
    [(name.split(".")[0], name, lake.version(name), lake.read(name).count())
     for name in lake.tables()],
    "layer STRING, table STRING, version BIGINT, rows BIGINT")
display(tables.orderBy("table"))

# COMMAND ----------

# MAGIC %md ## Rows in and out of the latest refine run
# MAGIC Per source: bronze rows = silver rows + quarantined + duplicates removed.

# COMMAND ----------

run_log = lake.read("ops.run_log")
refine = run_log.where("stage = 'refine' AND rows_in IS NOT NULL AND quarantined IS NOT NULL")
latest_refine = refine.agg(F.max("run_id")).first()[0]
balance = refine.where(F.col("run_id") == latest_refine).groupBy("source", "table").agg(
    *[F.sum(c).alias(c) for c in ("rows_in", "rows_out", "quarantined", "duplicates")])
display(balance)

# COMMAND ----------

# MAGIC %md ## Quarantine by rule, and the quality gates

# COMMAND ----------

quarantine = lake.read("silver.quarantine") \
    .select("_source", F.explode("rules").alias("rule")).groupBy("_source", "rule").count()
display(quarantine.orderBy(F.desc("count")))

quality = lake.read("ops.quality_results")
quality_summary = quality.where(F.col("run_id") == quality.agg(F.max("run_id")).first()[0]) \
    .groupBy("table").agg(F.count("*").alias("expectations"),
                          F.sum((~F.col("success")).cast("int")).alias("failed"))
display(quality_summary.orderBy("table"))

# COMMAND ----------

# MAGIC %md ## What each stage did (latest first), and a table's history (time travel)

# COMMAND ----------

display(run_log.groupBy("stage", "run_id").agg(
    F.min("started_at").alias("started"), F.max("finished_at").alias("finished"),
    F.sum("rows_out").alias("rows_out"), F.collect_set("status").alias("status"))
    .orderBy(F.desc("finished")))
history = lake.history("gold.customer_features")
for entry in history[:5]:
    print(entry.get("version"), entry.get("timestamp"), entry.get("operation"))
