"""End to end: `idds run` on synthetic deliveries, with real Prefect, dbt, GX and DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import run_cli

from idds.dbt import run_dbt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(pipeline_run):
    return pipeline_run


def analyst(settings, sql):
    con = duckdb.connect(str(settings.publish), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_run_succeeds_and_publishes_the_analyst_file(first_run):
    settings, code = first_run
    assert code == 0
    tables = {r[0] for r in analyst(settings, "select table_schema || '.' || table_name from information_schema.tables")}
    assert {"marts.cohort_idds", "marts.cohort_attrition", "marts.survival_summary", "marts.survival_km",
            "dq.dq_reconciliation", "dq.dq_run", "dq.dq_check_result", "dq.quarantine"} <= tables


def test_reconciliation_holds_for_every_file(first_run):
    settings, _ = first_run
    rows = analyst(settings, "select source_file, rows_read, rows_loaded, rows_quarantined, rows_duplicate "
                             "from dq.dq_reconciliation")
    assert len(rows) >= 12
    for name, read, loaded, quarantined, duplicate in rows:
        assert read == loaded + quarantined + duplicate, name
        assert read > 0, name


def compare_with_truth(mart: pd.DataFrame, truth: pd.DataFrame) -> dict[str, int]:
    """Columns (shared by the mart and the truth) where some patient differs, with counts."""
    merged = truth.merge(mart, on="implant_id", how="outer", suffixes=("_truth", "_mart"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged["_merge"].value_counts().to_dict()
    differing = {}
    for column in mart.columns:
        if f"{column}_truth" not in merged:
            continue
        a, b = merged[f"{column}_truth"], merged[f"{column}_mart"]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            same = np.isclose(pd.to_numeric(a, errors="coerce").astype(float), b.astype(float),
                              atol=1e-6, equal_nan=True)
        else:
            def norm(x):
                if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NaT or x is pd.NA:
                    return None
                text = str(x)
                return text[:10] if len(text) >= 10 and text[4] == "-" else text
            same = np.array([norm(x) == norm(y) for x, y in zip(a, b, strict=True)])
        if (~same).any():
            differing[column] = int((~same).sum())
    return differing


def cohort_and_truth(settings, extract):
    truth = pd.read_csv(extract / "truth" / "latent.csv", dtype={"patient_id": str})
    con = duckdb.connect(str(settings.publish), read_only=True)
    mart = con.execute("select * from marts.cohort_idds").df()
    con.close()
    return mart, truth


def test_the_cohort_equals_the_generators_truth_for_every_patient_and_variable(first_run, paper_extract):
    settings, _ = first_run
    mart, truth = cohort_and_truth(settings, paper_extract)
    assert len(mart) == len(truth) == 96
    shared = [c for c in mart.columns if c in truth.columns]
    assert len(shared) >= 70, shared
    assert compare_with_truth(mart, truth) == {}
    assert analyst(settings, "select n_remaining from marts.cohort_attrition order by step_order desc limit 1") == [(96,)]


def test_attrition_counts_every_non_cohort_patient_at_its_step(first_run, paper_extract):
    settings, _ = first_run
    noncohort = pd.read_csv(paper_extract / "truth" / "noncohort.csv")
    step_column = "expected_step"
    expected = noncohort[step_column].str.split(":").str[0].value_counts().to_dict()
    got = dict(analyst(settings, "select step, n_excluded from marts.cohort_attrition where n_excluded > 0"))
    assert got == expected


def test_dbt_docs_generate_works(first_run):
    settings, _ = first_run
    outcome = run_dbt(settings, ["docs", "generate"])
    assert outcome.success, outcome.errors
    assert (settings.dbt_target_dir / "catalog.json").is_file()


def test_survival_summary_holds_the_followup_and_sensitivity_curves(first_run):
    settings, _ = first_run
    rows = dict(analyst(settings, "select analysis_set, n from marts.survival_summary where stratum = 'overall'"))
    assert rows == {"followup": 72, "sensitivity": 96}


def test_the_validation_report_is_written_per_run_and_as_latest(first_run):
    settings, _ = first_run
    latest = settings.reports / "latest" / "validation.html"
    html = latest.read_text(encoding="utf-8")
    run_id = analyst(settings, "select run_id from dq.dq_run")[0][0]
    assert (settings.reports / run_id / "validation.html").read_text(encoding="utf-8") == html
    assert "Published" in html and run_id in html


def test_no_identifier_reaches_the_analyst_file(first_run, paper_extract):
    settings, _ = first_run
    mrns = set(pd.read_csv(paper_extract / "truth" / "latent.csv", dtype=str)["patient_id"])
    con = duckdb.connect(str(settings.publish), read_only=True)
    text_columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR'").fetchall()
    for schema, table, column in text_columns:
        values = {r[0] for r in con.execute(f'select distinct "{column}" from {schema}.{table}').fetchall()}
        assert not (values & mrns), f"{schema}.{table}.{column} holds raw MRNs"
    con.close()


def test_a_second_run_without_new_data_loads_nothing_and_leaves_the_analyst_file(first_run):
    settings, _ = first_run
    before = settings.publish.read_bytes()
    assert run_cli(settings) == 0
    assert settings.publish.read_bytes() == before
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    runs = con.execute("select status from dq.dq_run order by started_at").fetchall()
    last = con.execute("select run_id from dq.dq_run order by started_at desc limit 1").fetchall()[0][0]
    reconciled = con.execute("select count(*) from dq.dq_reconciliation where run_id = ?", [last]).fetchall()
    con.close()
    assert runs[-1] == ("no_new_data",) and len(runs) >= 2
    assert reconciled == [(0,)]


def test_every_example_query_of_the_analyst_guide_runs_on_the_analyst_file(first_run):
    import re
    from pathlib import Path

    settings, _ = first_run
    guide = (Path(__file__).resolve().parents[2] / "docs" / "analysts.md").read_text(encoding="utf-8")
    queries = re.findall(r"```sql\n(.*?)```", guide, flags=re.S)
    assert len(queries) >= 12
    con = duckdb.connect(str(settings.publish), read_only=True)
    for query in queries:
        rows = con.execute(query).fetchall()
        assert rows is not None, query
    con.close()


def test_the_study_report_is_written_with_its_figures(first_run):
    settings, _ = first_run
    html = (settings.reports / "latest" / "study.html").read_text(encoding="utf-8")
    assert "2.96" in html  # KM median of the follow-up set
    assert list((settings.reports / "latest" / "figures").glob("*.png"))
