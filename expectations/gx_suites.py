"""Great Expectations suites on the marts (distribution and plausibility).

Each expectation carries its check id in ``meta`` so its result lands in
``dq.dq_check_result`` beside the pandera and dbt results. The marts are small (one row
per patient), so they are validated as pandas batches (GX's SQL datasource through
duckdb-engine does not resolve metrics on DuckDB 2.0; see docs/pitfalls.md).
"""

from __future__ import annotations

import great_expectations as gx

E = gx.expectations


def _suite(name: str, expectations: list) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def _volume(mart: str, previous_rows: int | None) -> list:
    """Volume against the last run: at least 90 % and at most twice (+10) the last count."""
    if previous_rows is None:
        return [E.ExpectTableRowCountToBeBetween(
            min_value=1, meta={"check_id": f"gx.{mart}.row_count.nonzero"})]
    return [E.ExpectTableRowCountToBeBetween(
        min_value=int(previous_rows * 0.9), max_value=previous_rows * 2 + 10,
        meta={"check_id": f"gx.{mart}.row_count.volume_vs_last_run"})]


def suites(previous_rows: dict[str, int] | None = None) -> dict[str, gx.ExpectationSuite]:
    """Mart name -> its expectation suite; ``previous_rows`` are the last run's row counts."""
    previous_rows = previous_rows or {}
    cohort = _volume("cohort_idds", previous_rows.get("cohort_idds")) + [
        E.ExpectColumnValuesToBeBetween(
            column="age_years", min_value=18, max_value=100,
            meta={"check_id": "gx.cohort_idds.age_years.range"}),
        E.ExpectColumnValuesToBeInSet(
            column="sex", value_set=["F", "M"], meta={"check_id": "gx.cohort_idds.sex.accepted"}),
        E.ExpectColumnValuesToNotBeNull(
            column="os_days", meta={"check_id": "gx.cohort_idds.os_days.complete"}),
        E.ExpectColumnValuesToBeBetween(
            column="os_days", min_value=0, meta={"check_id": "gx.cohort_idds.os_days.non_negative"}),
        E.ExpectColumnValuesToBeInSet(
            column="os_event", value_set=[0, 1], meta={"check_id": "gx.cohort_idds.os_event.accepted"}),
        E.ExpectColumnValuesToBeUnique(
            column="patient_key", meta={"check_id": "gx.cohort_idds.patient_key.unique"}),
        E.ExpectColumnValuesToBeBetween(
            column="bmi", min_value=10, max_value=60, meta={"check_id": "gx.cohort_idds.bmi.range"}),
        E.ExpectColumnValuesToBeBetween(
            column="baseline_nrs", min_value=0, max_value=10,
            meta={"check_id": "gx.cohort_idds.baseline_nrs.range"}),
        E.ExpectColumnMeanToBeBetween(
            column="baseline_nrs", min_value=4, max_value=10,
            meta={"check_id": "gx.cohort_idds.baseline_nrs.mean_refractory"}),
        E.ExpectColumnValuesToBeBetween(
            column="baseline_ome_mg_per_day", min_value=0, max_value=5000,
            meta={"check_id": "gx.cohort_idds.baseline_ome_mg_per_day.range"}),
        E.ExpectColumnValuesToNotBeNull(
            column="implant_date", meta={"check_id": "gx.cohort_idds.implant_date.complete"}),
        E.ExpectColumnValuesToNotBeNull(
            column="followup_status", meta={"check_id": "gx.cohort_idds.followup_status.complete"}),
    ]
    implants = _volume("fct_implants", previous_rows.get("fct_implants")) + [
        E.ExpectColumnValuesToBeUnique(
            column="implant_id", meta={"check_id": "gx.fct_implants.implant_id.unique"}),
        E.ExpectColumnValuesToBeBetween(
            column="surgery_duration_hours", min_value=0, max_value=24,
            meta={"check_id": "gx.fct_implants.surgery_duration_hours.range"}),
    ]
    patients = _volume("dim_patients", previous_rows.get("dim_patients")) + [
        E.ExpectColumnValuesToBeUnique(
            column="patient_key", meta={"check_id": "gx.dim_patients.patient_key.unique"}),
        E.ExpectColumnValuesToNotBeNull(
            column="exclusion_step", meta={"check_id": "gx.dim_patients.exclusion_step.complete"}),
    ]
    return {
        "cohort_idds": _suite("cohort_idds", cohort),
        "fct_implants": _suite("fct_implants", implants),
        "dim_patients": _suite("dim_patients", patients),
    }
