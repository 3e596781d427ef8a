"""End to end: `idds run` on synthetic deliveries, with real Prefect, dbt, GX and DuckDB."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

from idds.cli import main

pytestmark = pytest.mark.slow


def run_cli(settings, *extra) -> int:
    return main([
        "run", "--landing", str(settings.landing), "--warehouse", str(settings.warehouse),
        "--publish", str(settings.publish), "--reports", str(settings.reports), *extra,
    ])


@pytest.fixture(scope="module")
def first_run(prefect_harness, paper_extract, tmp_path_factory):
    """One run over the paper extract, shared by the tests that only read its outputs."""
    from idds.settings import Settings

    root = tmp_path_factory.mktemp("run")
    settings = Settings(
        landing=root / "landing", warehouse=root / "warehouse.duckdb", publish=root / "analyst.duckdb",
        reports=root / "reports", work=root / "work", key_file=root / "none",
    )
    shutil.copytree(paper_extract / "landing", settings.landing)
    code = run_cli(settings)
    return settings, code


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


def test_the_cohort_matches_the_generators_truth(first_run, paper_extract):
    settings, _ = first_run
    truth = pd.read_csv(paper_extract / "truth" / "latent.csv")
    cohort = duckdb.connect(str(settings.publish), read_only=True).execute(
        "select implant_id, implant_date, sex, age_years, os_days, os_event from marts.cohort_idds").df()
    assert len(truth) == 96
    key = ["implant_id", "implant_date", "sex", "age_years", "os_days", "os_event"]
    ours = cohort.assign(implant_date=cohort.implant_date.astype(str))[key]
    theirs = truth.assign(implant_date=pd.to_datetime(truth.implant_date).dt.strftime("%Y-%m-%d"))[key]
    merged = theirs.merge(ours, on="implant_id", how="left", suffixes=("_truth", "_mart"), indicator=True)
    assert (merged["_merge"] == "both").all(), "every true cohort patient is in the mart"
    for column in key[1:]:
        assert (merged[f"{column}_truth"].astype(str) == merged[f"{column}_mart"].astype(str)).all(), column


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
    assert "Cohort build allowed" in html and run_id in html


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


def test_a_second_run_without_new_data_loads_nothing(first_run):
    settings, _ = first_run
    assert run_cli(settings) == 0
    runs = analyst(settings, "select count(*) from dq.dq_run")[0][0]
    assert runs == 2
    last = analyst(settings, "select run_id from dq.dq_run order by started_at desc limit 1")[0][0]
    assert analyst(settings, f"select count(*) from dq.dq_reconciliation where run_id = '{last}'") == [(0,)]


def test_a_blocking_failure_exits_1_and_keeps_the_last_good_analyst_file(first_run, tmp_path):
    settings, _ = first_run
    before = settings.publish.read_bytes()
    # a later delivery corrects one cohort patient's birth date to an impossible one
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    mrn = con.execute("select patient_id from raw.patients p join raw.idds_implants i using (patient_id) "
                      "limit 1").fetchall()[0][0]
    con.close()
    folder = settings.landing / "9999-12-31"
    folder.mkdir()
    (folder / "patients.csv").write_text(f"patient_id,sex,birth_date\n{mrn},M,1890-01-01\n", encoding="utf-8")
    assert run_cli(settings) == 1
    assert settings.publish.read_bytes() == before
    html = (settings.reports / "latest" / "validation.html").read_text(encoding="utf-8")
    assert "Cohort build blocked" in html and "gx.cohort_idds.age_years.range" in html
