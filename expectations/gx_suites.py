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


def suites() -> dict[str, gx.ExpectationSuite]:
    """Mart name -> its expectation suite."""
    cohort = [
        E.ExpectTableRowCountToBeBetween(
            min_value=1, meta={"check_id": "gx.cohort_idds.row_count.nonzero"}),
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
    ]
    return {"cohort_idds": _suite("cohort_idds", cohort)}
