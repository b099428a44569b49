# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Identity resolution
# MAGIC How CRM records became customers: the Splink model's figures, how many records each customer
# MAGIC merges, which systems they come from, and how web/app/email identifiers map onto customers.
# MAGIC Pseudonymous throughout: no name or email is shown.

# COMMAND ----------

from pyspark.sql import functions as F

from seglake.notebooks import notebook_context, show

config, spark, lake = notebook_context()  # SEGLAKE_CONFIG; Databricks' session there
if "display" not in globals():  # Databricks provides display()
    display = show

# COMMAND ----------

# MAGIC %md ## The linkage model (latest version in `ops.models`)

# COMMAND ----------

import json

from seglake.models import latest_model

model = latest_model(lake, "identity-linkage")
linkage = json.loads(model["metrics"])
print(f"model v{model['version']}, run {model['run_id']}")
for name, value in sorted(linkage.items()):
    print(f"  {name:<16} {value}")

# COMMAND ----------

# MAGIC %md ## Customers by number of CRM records, and by systems

# COMMAND ----------

customers = lake.read("silver.customers")
sizes = customers.groupBy("record_count").count().orderBy("record_count")
display(sizes)
display(customers.groupBy(F.array_sort("systems").alias("systems")).count()
        .orderBy(F.desc("count")))

# COMMAND ----------

# MAGIC %md ## The identity map: which identifiers lead to customers

# COMMAND ----------

identity_map = lake.read("silver.identity_map")
kinds = identity_map.where(F.col("valid_to").isNull()).groupBy("id_kind").agg(  # valid now
    F.count("*").alias("identifiers"), F.countDistinct("customer_key").alias("customers"))
display(kinds.orderBy("id_kind"))
