"""The HTML report on the small demo: every section with its figures and numbers that agree with
the tables, opened in headless Chromium without errors (a screenshot is kept)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from seglake.declarations import RUN_LOG
from seglake.lakehouse import Lakehouse
from seglake.measure import run_measure
from seglake.report import SECTIONS, run_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# figures each section must carry on the published small world
FIGURES = {"overview": 1, "quality": 0, "identity": 1, "cohorts": 1, "flags": 0, "segments": 2,
           "profiles": 1, "k-selection": 1, "pca": 1, "propensity": 2, "recommendations": 1,
           "changes": 0,
           "activation": 1, "monitoring": 1}


@pytest.fixture(scope="module")
def report(spark, config, published):
    run_measure(spark, config, activated_on=published.as_of)  # the 30 days after it: no campaign
    return run_report(spark, config)


def _section(document: str, section_id: str) -> str:
    found = re.search(rf"<section id='{section_id}'>(.*?)</section>", document, re.S)
    assert found, f"section {section_id} missing"
    return found.group(1)


def test_report_has_every_section_with_its_figures_and_numbers(spark, config, resolved,
                                                               published, report):
    document = Path(report.path).read_text(encoding="utf-8")
    assert report.sections == list(FIGURES) and len(SECTIONS) == len(FIGURES)
    assert report.figures == sum(FIGURES.values())
    for section_id, figures in FIGURES.items():
        body = _section(document, section_id)
        assert "class='missing'" not in body, section_id
        assert body.count("<img ") == figures, section_id
    assert "src='http" not in document and "<script" not in document  # self-contained

    lake = Lakehouse.from_config(spark, config)
    overview = _section(document, "overview")
    customers = lake.read("silver.customers").count()
    assert re.search(rf"<td>silver.customers</td>\s*<td>\d+</td>\s*<td>{customers}</td>",
                     overview)
    identity = _section(document, "identity")
    merged = resolved.records - resolved.crm_customers
    assert re.search(rf"<td>duplicate records merged</td>\s*<td>{merged:,}</td>", identity)
    segments = _section(document, "segments")
    summary = lake.read("gold.segment_summary").where(F.col("as_of") == published.as_of)
    for row in summary.where("kind = 'rule'").collect():
        assert re.search(rf"<td>{row.segment}</td>\s*<td>{row.customers}</td>", segments)
    k_section = _section(document, "k-selection")
    metrics = json.loads(lake.read("ops.models").where("kind = 'clustering'")
                         .orderBy(F.desc("version")).first().metrics)
    for score in metrics["k_scores"]:
        assert re.search(rf"<td>{score['k']}</td>\s*<td>{score['silhouette']:,.3f}</td>",
                         k_section)
    cohorts = _section(document, "cohorts")  # one table row per cohort of the latest as_of
    latest = lake.read("gold.cohort_retention").agg(F.max("as_of")).first()[0]
    n_cohorts = lake.read("gold.cohort_retention").where(F.col("as_of") == latest) \
        .select("cohort_month").distinct().count()
    assert n_cohorts > 1 and cohorts.count("<tr") == n_cohorts + 1  # + the header row
    flags = _section(document, "flags")  # one row per flag kind, counted as the table holds
    flagged = {r["flag"]: r["count"] for r in lake.read("gold.customer_flags").where(
        F.col("as_of") == latest).groupBy("flag").count().collect()}
    for flag, count in flagged.items():
        assert re.search(rf"<td>{flag}</td>\s*<td>{count}</td>", flags)
    recommended = _section(document, "recommendations")
    hit = json.loads(lake.read("ops.models").where("kind = 'recommendation'")
                     .orderBy(F.desc("version")).first().metrics)["hit_rate"]
    assert re.search(rf"<td>own categories, then the model</td>\s*<td>{hit:.3f}", recommended)
    changes = _section(document, "changes")
    assert f"As of {published.as_of}" in changes
    activation = _section(document, "activation")
    assert f"Activation on {published.as_of}" in activation
    held = lake.read("gold.segment_assignments").where(
        (F.col("as_of") == published.as_of) & (F.col("kind") == "rule")
        & (F.col("group") == "holdout")).count()
    assert re.search(rf"<td>rule</td>\s*<td>\d+</td>\s*<td>\d+</td>\s*<td>{held}</td>",
                     activation)
    logged = lake.read(RUN_LOG).where(F.col("run_id") == report.run_id).collect()
    assert len(logged) == 1 and logged[0].stage == "report" \
        and logged[0].rows_out == len(FIGURES)


def test_report_opens_in_headless_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} not found: install Chromium (Debian: apt-get install chromium)")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(Path(report.path).resolve().as_uri())
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        headings = page.evaluate("Array.from(document.querySelectorAll('h2'))"
                                 ".map(h => h.textContent)")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert len(widths) == report.figures and all(w > 100 for w in widths)  # every PNG decoded
    assert len(headings) == len(report.sections)
    assert shot.stat().st_size > 50_000
    shutil.copy(shot, Path(report.path).with_suffix(".png"))  # kept next to the report
