"""The outcome marts: computed from the cohort frame, written to DuckDB, degrading gracefully."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from idds.dq import ensure_dq_schema
from idds.outcomes import (
    OUTCOME_MARTS,
    compute_outcomes,
    compute_outcomes_with_status,
    save_figures,
    write_outcome_marts,
)
from synth.latent import EXTRA_COLUMNS, build_latent

ROOT = Path(__file__).resolve().parents[2]

#: Required columns of the analyst interface (and of the brief for the marts it does not list).
TABLE_REQUIRED = ("row_order", "section", "variable", "level", "statistic", "n", "denominator",
                  "value", "sd", "q1", "q3", "display", "paper_display", "matches_paper", "note")
REQUIRED: dict[str, tuple[str, ...]] = {
    "table1": TABLE_REQUIRED,
    "table2": TABLE_REQUIRED,
    "table3": TABLE_REQUIRED,
    "pain_response": ("test", "n", "before_mean", "before_sd", "after_mean", "after_sd",
                      "mean_difference", "ci_low", "ci_high", "statistic", "p_value"),
    "survival_km": ("analysis_set", "stratum", "time_months", "n_at_risk", "n_events", "n_censored",
                    "survival", "ci_low", "ci_high"),
    "survival_summary": ("analysis_set", "stratum", "n", "n_events", "median_months", "median_ci_low",
                         "median_ci_high", "t_s075_months", "t_s025_months"),
    "survival_logrank": ("analysis_set", "variable", "n_groups", "test_statistic", "p_value"),
    "cox_model": ("analysis_set", "term", "hr", "hr_ci_low", "hr_ci_high", "p_value"),
    "cox_ph_test": ("analysis_set", "term", "test_statistic", "p_value"),
    "implants_by_year": ("implant_year", "n"),
    "reproduction": ("source", "statistic", "paper_value", "pipeline_value", "matches", "note"),
}

THIN_COLUMNS = ["patient_key", "implant_date", "sex", "age_years", "os_days", "os_months", "os_event",
                "followup_status", "explant_date"]


def mart_frame(seed: int = 11) -> pd.DataFrame:
    """The latent cohort shaped like ``marts.cohort_idds`` (patient_key, no latent-only columns)."""
    return build_latent(seed).rename(columns={"patient_id": "patient_key"}).drop(columns=EXTRA_COLUMNS)


def warehouse_with(cohort: pd.DataFrame | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema marts")
    if cohort is not None:
        con.register("_cohort", cohort)
        con.execute("create table marts.cohort_idds as select * from _cohort")
        con.unregister("_cohort")
    return con


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return mart_frame()


@pytest.fixture(scope="module")
def outcomes(cohort) -> dict[str, pd.DataFrame]:
    return compute_outcomes(cohort)


@pytest.fixture(scope="module")
def warehouse(cohort):
    con = warehouse_with(cohort)
    counts = write_outcome_marts(con)
    yield con, counts
    con.close()


def test_every_outcome_mart_is_computed_with_the_columns_analysts_rely_on(outcomes):
    assert set(outcomes) == set(REQUIRED) == set(OUTCOME_MARTS)
    for name, columns in REQUIRED.items():
        frame = outcomes[name]
        missing = [c for c in columns if c not in frame.columns]
        assert not missing, f"{name} lacks {missing}"
        assert len(frame) > 0, name


def test_kaplan_meier_median_of_the_followup_set_rounds_to_3_with_quartiles_2_and_6(outcomes):
    s = outcomes["survival_summary"]
    row = s.loc[(s["analysis_set"] == "followup") & (s["stratum"] == "overall")].iloc[0]
    assert (row["n"], row["n_events"]) == (72, 56)
    assert round(row["median_months"]) == 3
    assert round(row["t_s075_months"]) == 2
    assert round(row["t_s025_months"]) == 6
    assert row["median_ci_low"] < row["median_months"] < row["median_ci_high"]
    sens = s.loc[(s["analysis_set"] == "sensitivity") & (s["stratum"] == "overall")].iloc[0]
    assert sens["n"] == 96


def test_paired_t_test_of_nrs_is_below_0_001_and_wilcoxon_is_reported(outcomes):
    p = outcomes["pain_response"].set_index("test")
    assert set(p.index) == {"paired_t", "wilcoxon"}
    assert p.loc["paired_t", "p_value"] < 0.001
    assert p.loc["paired_t", "n"] == 72
    assert round(p.loc["paired_t", "before_mean"], 1) == 7.5
    assert round(p.loc["paired_t", "after_mean"], 1) == 3.0
    assert p.loc["wilcoxon", "p_value"] < 0.001


def test_reproduction_has_rows_and_every_mismatch_carries_an_inconsistency_id(outcomes):
    rep = outcomes["reproduction"]
    assert len(rep) >= 90
    assert rep["matches"].sum() >= 85
    mismatches = rep.loc[~rep["matches"].astype(bool)]
    assert len(mismatches) > 0
    for _, r in mismatches.iterrows():
        assert re.search(r"IC-\d\d", f"{r['ic_ids']} {r['note']}"), r["statistic"]


def test_tables_match_the_paper_except_where_it_is_inconsistent(outcomes):
    for name in ("table1", "table2", "table3"):
        t = outcomes[name]
        compared = t.loc[t["matches_paper"].notna()]
        bad = compared.loc[~compared["matches_paper"].astype(bool)]
        assert bad["ic_ids"].fillna("").str.contains("IC-").all(), bad[["variable", "level"]]


def test_not_reached_survival_quantiles_are_missing_not_infinite(outcomes):
    for name, frame in outcomes.items():
        numeric = frame.select_dtypes(include=[np.number])
        assert not np.isinf(numeric.to_numpy(dtype=float)).any(), name
    s = outcomes["survival_summary"]
    # some strata never fall to 25 % survival: not reached -> missing
    assert s["t_s025_months"].isna().any()


def test_not_reached_quantiles_are_null_in_the_marts(warehouse):
    con, _ = warehouse
    nulls, infs = con.execute(
        "select count(*) filter (where t_s025_months is null), "
        "count(*) filter (where isinf(t_s025_months) or isinf(median_ci_high) or isnan(median_ci_high)) "
        "from marts.survival_summary").fetchall()[0]
    assert nulls > 0 and infs == 0
    assert con.execute("select count(*) from marts.table1 where isnan(value)").fetchall()[0][0] == 0


def test_the_cohort_frame_is_left_untouched(cohort):
    before = cohort.copy()
    compute_outcomes(cohort)
    pd.testing.assert_frame_equal(cohort, before)


def test_a_thin_cohort_still_gives_the_survival_marts_and_names_what_it_skips(cohort):
    thin = cohort[THIN_COLUMNS].copy()
    marts, skipped = compute_outcomes_with_status(thin)
    assert {"survival_km", "survival_summary", "implants_by_year"} <= set(marts)
    s = marts["survival_summary"]
    row = s.loc[(s["analysis_set"] == "followup") & (s["stratum"] == "overall")].iloc[0]
    assert round(row["median_months"]) == 3
    for name in ("table1", "table2", "table3", "pain_response", "cox_model", "cox_ph_test"):
        assert name not in marts
        assert "missing" in skipped[name]
    assert set(compute_outcomes(thin)) == set(marts)


def test_too_few_patients_or_no_followed_patient_never_raises(cohort):
    tiny = cohort.head(3).copy()
    marts, skipped = compute_outcomes_with_status(tiny)
    assert set(marts) | set(skipped) == set(OUTCOME_MARTS)
    nobody_followed = cohort.assign(followup_status="lost_or_refused")
    marts, skipped = compute_outcomes_with_status(nobody_followed)
    assert "survival_km" in skipped and "followed" in skipped["survival_km"]
    marts, skipped = compute_outcomes_with_status(cohort.iloc[0:0])
    assert not marts and set(skipped) == set(OUTCOME_MARTS)


def test_write_outcome_marts_round_trips_through_duckdb(warehouse, outcomes):
    con, counts = warehouse
    assert {k: v for k, v in counts.items() if k != "outcome_status"} == \
        {k: len(v) for k, v in outcomes.items()}
    for name, columns in REQUIRED.items():
        got = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = ? order by ordinal_position", [name]).fetchall()]
        assert got[:len(columns)] == list(columns) or set(columns) <= set(got), name
    t1 = con.execute("select display, paper_display, matches_paper from marts.table1 order by row_order").df()
    assert list(t1["display"]) == list(outcomes["table1"]["display"])
    median = con.execute("select median_months from marts.survival_summary "
                         "where analysis_set = 'followup' and stratum = 'overall'").fetchall()[0][0]
    assert round(median) == 3
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             "where table_schema = 'marts' and table_name = 'table1'").fetchall())
    assert types["matches_paper"] == "BOOLEAN" and types["n"] == "BIGINT" and types["value"] == "DOUBLE"
    status = con.execute("select mart, status from marts.outcome_status").fetchall()
    assert {m for m, s in status if s == "written"} == set(OUTCOME_MARTS)
    # the cohort read back from DuckDB gives the same statistics as the frame
    again = compute_outcomes(con.execute("select * from marts.cohort_idds").df())
    pd.testing.assert_frame_equal(again["reproduction"], outcomes["reproduction"])


def test_a_thin_cohort_mart_writes_the_other_marts_empty_with_their_columns(cohort):
    con = warehouse_with(cohort[THIN_COLUMNS])
    counts = write_outcome_marts(con)
    assert counts["survival_km"] > 0 and counts["table1"] == 0
    assert con.execute("select count(*) from marts.table1").fetchall()[0][0] == 0
    cols = [r[0] for r in con.execute("describe marts.table1").fetchall()]
    assert set(TABLE_REQUIRED) <= set(cols)
    reason = con.execute("select reason from marts.outcome_status where mart = 'pain_response'").fetchall()[0][0]
    assert "baseline_nrs" in reason
    # a second run replaces, never appends
    write_outcome_marts(con)
    assert con.execute("select count(*) from marts.survival_km").fetchall()[0][0] == counts["survival_km"]


def test_without_a_cohort_mart_every_outcome_mart_is_written_empty():
    con = warehouse_with(None)
    counts = write_outcome_marts(con)
    assert set(counts) == {*OUTCOME_MARTS, "outcome_status"}
    assert all(v == 0 for k, v in counts.items() if k != "outcome_status")


def test_save_figures_skips_what_a_thin_cohort_cannot_draw(cohort, tmp_path):
    paths = save_figures(cohort[THIN_COLUMNS], tmp_path)
    names = {p.name for p in paths}
    assert {"km_followup.png", "km_sensitivity.png", "implants_per_year.png"} <= names
    assert "nrs_before_after.png" not in names and "cox_forest.png" not in names
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _analyst_file(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Add the attrition mart and a small dq schema so every documented query has its tables."""
    con.execute("create schema if not exists dq")
    ensure_dq_schema(con)
    con.execute("""
        create or replace table marts.cohort_attrition as select * from (values
            (0, 'extract', 'every patient in the extract', 120, 0, null),
            (1, 'no_implant', 'has an IDDS implant record', 100, 20, 'no_implant')
        ) t(step_order, step, rule, n_remaining, n_excluded, reason)""")
    con.execute("insert into dq.dq_run (run_id, started_at, ended_at, status, verdict) values "
                "('r1', timestamp '2024-04-01 01:00', timestamp '2024-04-01 01:05', 'succeeded', 'allowed')")
    con.execute("insert into dq.dq_check (check_id, engine, kahn_category, severity, description) values "
                "('raw.patients.sex.accepted', 'pandera', 'conformance', 'warning', 'sex is F or M')")
    con.execute("insert into dq.dq_check_result (run_id, check_id, engine, status, rows_failed, rows_tested) "
                "values ('r1', 'raw.patients.sex.accepted', 'pandera', 'fail', 1, 120)")
    con.execute("insert into dq.dq_reconciliation (run_id, delivery_id, source_file, rows_read, rows_loaded, "
                "rows_quarantined, rows_duplicate) values ('r1', 'd1', 'patients.csv', 121, 119, 1, 1)")
    con.execute("insert into dq.quarantine (run_id, delivery_id, source_file, line_number, raw_row, "
                "check_ids, reasons) values ('r1', 'd1', 'patients.csv', 5, '{}', "
                "['raw.patients.sex.accepted'], 'field sex')")
    return con


def _set_aside_one_value(con: duckdb.DuckDBPyConnection) -> None:
    """One patient's total charge set aside, as the verdict step does (cohort as built kept,
    the value NULL in the cohort, listed in dq.dq_set_aside and marts.cohort_set_aside)."""
    from idds.setaside import BUILT, MART_SQL

    con.execute("create schema if not exists dq; create schema if not exists intermediate")
    ensure_dq_schema(con)
    con.execute(f"create or replace table {BUILT} as select * from marts.cohort_idds")
    key, value = con.execute("select patient_key, cast(total_charge_cny as varchar) from marts.cohort_idds "
                             "where total_charge_cny is not null order by patient_key limit 1").fetchall()[0]
    con.execute("update marts.cohort_idds set total_charge_cny = null where patient_key = ?", [key])
    con.execute("insert into dq.dq_set_aside values ('r1', ?, 'total_charge_cny', 'R-CS-01', ?, 'set_aside', "
                "'r1', 'dbt check', null, null, true)", [key, value])
    con.execute(MART_SQL, ["r1"])


def test_every_query_in_the_analyst_guide_runs_against_the_marts(cohort):
    text = (ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    queries = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    assert len(queries) >= 12
    con = warehouse_with(cohort)
    _set_aside_one_value(con)
    write_outcome_marts(con)
    assert con.execute("select n_set_aside, set_aside_checks from marts.table2 "
                       "where variable = 'total_charge_cny'").fetchall() == [(1, "R-CS-01")]
    _analyst_file(con)
    empty = []
    for q in queries:
        rows = con.execute(q).fetchall()
        if not rows:
            empty.append(q.splitlines()[0])
    # only the "what could not be computed" query may come back empty on a complete cohort
    assert len(empty) <= 1, empty
