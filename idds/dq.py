"""The ``dq`` schema: data-quality results as data, append-only and keyed by run."""

from __future__ import annotations

import duckdb

DDL = """
create table if not exists dq.dq_run (
    run_id varchar primary key, flow_run_id varchar, started_at timestamp, ended_at timestamp,
    status varchar, verdict varchar, message varchar, code_version varchar,
    landing varchar, deliveries json, package_versions json
);
create table if not exists dq.dq_delivery (
    run_id varchar, delivery_id varchar, status varchar, has_manifest boolean,
    n_files integer, message varchar
);
create table if not exists dq.ingest_file (
    run_id varchar, delivery_id varchar, source_file varchar, file_stem varchar,
    sha256 varchar, encoding varchar, status varchar, message varchar, loaded_at timestamp
);
create table if not exists dq.dq_reconciliation (
    run_id varchar, delivery_id varchar, source_file varchar, file_stem varchar,
    rows_read bigint, rows_loaded bigint, rows_quarantined bigint, rows_duplicate bigint,
    rows_superseded bigint, status varchar, message varchar
);
create table if not exists dq.quarantine (
    run_id varchar, delivery_id varchar, source_file varchar, file_stem varchar,
    line_number bigint, record_key varchar, patient_id varchar, raw_row varchar,
    check_ids varchar[], reasons varchar
);
create table if not exists dq.duplicate_row (
    run_id varchar, delivery_id varchar, source_file varchar, file_stem varchar,
    line_number bigint, first_line_number bigint
);
create table if not exists dq.schema_drift (
    run_id varchar, delivery_id varchar, source_file varchar, file_stem varchar,
    delivered_header varchar, kept_as varchar
);
create table if not exists dq.dq_check (
    check_id varchar primary key, engine varchar, kahn_category varchar,
    kahn_subcategory varchar, severity varchar, warn_pct double, fail_pct double,
    warn_count bigint, fail_count bigint, description varchar, rationale varchar,
    what_to_do varchar
);
create table if not exists dq.dq_failed_row (
    run_id varchar, check_id varchar, table_name varchar, patient_key varchar,
    record_key varchar, offending_value varchar
);
create table if not exists dq.dq_waiver (
    run_id varchar, check_id varchar, record_key varchar, reason varchar, owner varchar,
    created date, expires date, state varchar
);
create table if not exists dq.mart_volume (
    run_id varchar, mart varchar, n_rows bigint
);
create table if not exists dq.dq_set_aside (
    run_id varchar, patient_key varchar, variable varchar, check_id varchar, value varchar,
    status varchar, first_seen_run_id varchar, source varchar, waiver_owner varchar,
    waiver_expires date, followup_set boolean
);
create table if not exists dq.dq_check_result (
    run_id varchar, check_id varchar, engine varchar, status varchar, rows_failed bigint,
    rows_tested bigint, pct_failed double, patients_affected bigint, drilldown_sql varchar,
    execution_ms double, detail varchar, rows_in_cohort bigint
);
"""


def ensure_dq_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the dq tables if they are missing (idempotent)."""
    con.execute(DDL)


def record_check_result(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    check_id: str,
    engine: str,
    rows_failed: int,
    rows_tested: int,
    *,
    status: str | None = None,
    drilldown_sql: str | None = None,
    execution_ms: float | None = None,
    detail: str | None = None,
    patients_affected: int | None = None,
) -> None:
    """Append one check result. The status given here is provisional: the catalogue's
    thresholds, severities and waivers settle it (idds.checks.settle_results)."""
    if status is None:
        status = "pass" if rows_failed == 0 else "fail"
    pct = (100.0 * rows_failed / rows_tested) if rows_tested else None
    con.execute(
        "insert into dq.dq_check_result values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null)",
        [run_id, check_id, engine, status, rows_failed, rows_tested, pct, patients_affected,
         drilldown_sql, execution_ms, detail],
    )
