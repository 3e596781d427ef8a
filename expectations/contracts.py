"""Raw-file contracts: one pandera schema per file of the EMR extract contract.

The schemas are the one home of the raw rules (required fields, parseable dates and
numbers, accepted enum codes or labels, physical ranges, the business key). Every check
carries its SQL predicate in ``statistics["sql"]`` so that ingestion executes the same
rules inside DuckDB at hospital scale (:mod:`idds.ingest.contract_sql`), while pandera's
own pandas backend runs them on small frames (tests compare the two). Both call the same
DuckDB macros (``idds/sql/functions.sql``), so there is one implementation of each parser.

Check ids are ``raw.<file>.<column>.<check>``; ``<check>`` is one of ``not_null``,
``date``, ``datetime``, ``month_date``, ``number``, ``integer``, ``accepted``, ``range``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.pandas as pa

_PARSERS = {
    "date": ("idds_date({c}) is not null", "is not a date in any contract form"),
    "datetime": ("idds_timestamp({c}) is not null", "is not a date-time in any contract form"),
    "month_date": ("idds_month_date({c}) is not null", "is not a date (or year-month)"),
    "number": ("idds_number({c}) is not null", "is not a number"),
    "integer": (
        "idds_number({c}) is not null and idds_number({c}) = round(idds_number({c}))",
        "is not a whole number",
    ),
}

_local = threading.local()


def _oracle_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the macros, to run check predicates on pandas frames."""
    if getattr(_local, "con", None) is None:
        from idds.warehouse import install_functions

        con = duckdb.connect()
        install_functions(con, None)
        _local.con = con
    return _local.con


def _duckdb_predicate(sql: str, column: str | None = None):
    """A pandera check function evaluating ``sql`` row by row in DuckDB.

    With ``column`` the check receives a Series, exposed to the SQL as ``v``; without, it
    receives the frame and the SQL names its columns.
    """

    def check(data: pd.Series | pd.DataFrame) -> pd.Series:
        frame = data.to_frame("v") if column else data
        frame = frame.astype("object").where(frame.notna(), None)
        con = _oracle_connection()
        con.register("_frame", frame)
        try:
            ok = con.execute(f"select coalesce({sql}, false) as ok from _frame").df()["ok"]
        finally:
            con.unregister("_frame")
        return pd.Series(ok.to_numpy(dtype=bool), index=data.index)

    return check


def _check(name: str, sql_body: str, message: str) -> pa.Check:
    """A check over one column: ``sql_body`` uses ``{c}`` for the column expression."""
    return pa.Check(
        _duckdb_predicate(sql_body.format(c="v"), column="v"),
        name=name,
        error=message,
        ignore_na=False,
        statistics={"sql": sql_body},
    )


def field(
    kind: str = "text",
    *,
    required: bool = False,
    domain: str | None = None,
    between: tuple[float, float] | None = None,
    phi: bool = False,
    free_text: bool = False,
) -> pa.Column:
    """A raw text column with the checks its contract type implies.

    Parameters
    ----------
    kind : {"text", "date", "datetime", "month_date", "number", "integer", "enum"}
    required : the field may not be empty or a missing token
    domain : enum domain in ``mapping.yml`` (for ``kind="enum"``)
    between : inclusive physical range for numbers
    phi : a direct identifier (never echoed in messages or published)
    free_text : narrative text (truncated wherever quarantined rows are shown)
    """
    checks = []
    if required:
        checks.append(_check("not_null", "not idds_missing({c})", "is required but empty"))
    if kind in _PARSERS:
        sql, message = _PARSERS[kind]
        checks.append(_check(kind, "idds_missing({c}) or (" + sql + ")", message))
    elif kind == "enum":
        if domain is None:
            raise ValueError("an enum field needs a domain")
        checks.append(
            _check(
                "accepted",
                "idds_missing({c}) or idds_enum('" + domain + "', {c}) is not null",
                f"is not an accepted {domain} code or label",
            )
        )
    elif kind != "text":
        raise ValueError(f"unknown field kind {kind!r}")
    if between is not None:
        lo, hi = between
        checks.append(
            _check(
                "range",
                f"idds_number({{c}}) is null or idds_number({{c}}) between {lo} and {hi}",
                f"is outside the range {lo:g} to {hi:g}",
            )
        )
    return pa.Column(
        str,
        checks=checks,
        nullable=True,
        required=False,
        metadata={"kind": kind, "required": required, "domain": domain, "phi": phi, "free_text": free_text},
    )


def row_check(column: str, name: str, sql: str, message: str) -> pa.Check:
    """A check across columns of one row, reported against ``column`` (SQL names columns)."""
    return pa.Check(
        _duckdb_predicate(sql),
        name=name,
        error=message,
        ignore_na=False,
        statistics={"sql": sql, "column": column},
    )


def contract(name: str, key: str, columns: dict[str, pa.Column], checks: list[pa.Check] | None = None) -> pa.DataFrameSchema:
    """A file's contract; ``key`` is unique within one delivery."""
    columns = {**columns, "updated_at": field("datetime")}
    return pa.DataFrameSchema(columns, checks=checks or [], name=name, strict=False, metadata={"key": key})


ID = field(required=True)
PATIENT = field(required=True, phi=True)

CONTRACTS: dict[str, pa.DataFrameSchema] = {
    "patients": contract("patients", "patient_id", {
        "patient_id": PATIENT,
        "name": field(phi=True),
        "id_number": field(phi=True),
        "phone": field(phi=True),
        "sex": field("enum", domain="sex"),
        "birth_date": field("date"),
        "insurance_type": field("enum", domain="insurance_type"),
    }),
    "admissions": contract("admissions", "admission_id", {
        "admission_id": ID,
        "patient_id": PATIENT,
        "admit_time": field("datetime", required=True),
        "discharge_time": field("datetime"),
        "department": field(),
        "arrival_mode": field("enum", domain="arrival_mode"),
        "discharge_status": field("enum", domain="discharge_status"),
        "total_charge": field("number", between=(0, 10_000_000)),
        "self_pay": field("number", between=(0, 10_000_000)),
    }),
    "diagnoses": contract("diagnoses", "diagnosis_id", {
        "diagnosis_id": ID,
        "patient_id": PATIENT,
        "admission_id": field(),
        "diagnosis_date": field("date", required=True),
        "icd10_code": field(required=True),
        "diagnosis_name": field(free_text=True),
    }),
    "measurements": contract("measurements", "measurement_id", {
        "measurement_id": ID,
        "patient_id": PATIENT,
        "admission_id": field(),
        "measured_at": field("datetime", required=True),
        "item": field("enum", required=True, domain="measurement_item"),
        "value": field(required=True),
        "unit": field(),
    }, checks=[
        # the physical range of a value depends on the item measured
        row_check("value", "range", """
            idds_missing(value) or idds_enum('measurement_item', item) is null or case idds_enum('measurement_item', item)
                when 'nrs' then idds_number(value) between 0 and 10
                when 'adl' then idds_number(value) between 0 and 100
                when 'height' then idds_number(value) between 0.5 and 250
                when 'weight' then idds_number(value) > 0 and idds_number(value) <= 600
                when 'pressure_sore' then idds_enum('yes_no', value) is not null
                when 'pain_site' then idds_enum('pain_site', value) is not null
                else true end""", "is outside the range or codes of its item"),
    ]),
    "medication_orders": contract("medication_orders", "order_id", {
        "order_id": ID,
        "patient_id": PATIENT,
        "admission_id": field(),
        "drug_name": field(required=True),
        "dose": field("number", between=(0, 100_000)),
        "dose_unit": field("enum", domain="dose_unit"),
        "route": field("enum", domain="route"),
        "frequency": field("enum", domain="frequency"),
        "order_kind": field("enum", domain="order_kind"),
        "start_time": field("datetime", required=True),
        "end_time": field("datetime"),
    }),
    "procedures": contract("procedures", "procedure_id", {
        "procedure_id": ID,
        "patient_id": PATIENT,
        "admission_id": field(),
        "procedure_code": field(required=True),
        "procedure_name": field(free_text=True),
        "start_time": field("datetime", required=True),
        "end_time": field("datetime"),
    }),
    "idds_implants": contract("idds_implants", "implant_id", {
        "implant_id": ID,
        "patient_id": PATIENT,
        "procedure_id": field(required=True),
        "device_model": field(),
        "indication": field("enum", domain="indication"),
        "implant_reason": field("enum", domain="implant_reason"),
        "is_replacement": field("enum", domain="yes_no"),
        "insertion_level": field(),
        "catheter_tip_level": field(),
        "catheter_direction": field("enum", domain="catheter_direction"),
        "explant_date": field("date"),
        "explant_reason": field(free_text=True),
    }),
    "treatment_history": contract("treatment_history", "history_id", {
        "history_id": ID,
        "patient_id": PATIENT,
        "treatment_type": field("enum", required=True, domain="treatment_type"),
        "start_date": field("month_date"),
        "note": field(free_text=True),
    }),
    "itt_trials": contract("itt_trials", "trial_id", {
        "trial_id": ID,
        "patient_id": PATIENT,
        "trial_time": field("datetime", required=True),
        "drug": field("enum", domain="it_drug"),
        "dose": field("number", between=(0, 1000)),
        "dose_unit": field("enum", domain="trial_dose_unit"),
        "response": field("enum", domain="trial_response"),
    }),
    "pump_programs": contract("pump_programs", "program_id", {
        "program_id": ID,
        "implant_id": field(required=True),
        "programmed_at": field("datetime", required=True),
        "drug": field("enum", domain="pump_drug"),
        "concentration": field("number", between=(0, 1000)),
        "daily_dose": field("number", between=(0, 100_000)),
        "daily_dose_unit": field("enum", domain="daily_dose_unit"),
    }),
    "adverse_events": contract("adverse_events", "event_id", {
        "event_id": ID,
        "patient_id": PATIENT,
        "admission_id": field(),
        "event_date": field("date", required=True),
        "event_type": field("enum", required=True, domain="event_type"),
        "note": field(free_text=True),
    }),
    "followups": contract("followups", "followup_id", {
        "followup_id": ID,
        "patient_id": PATIENT,
        "contact_date": field("date", required=True),
        "outcome": field("enum", required=True, domain="followup_outcome"),
        "respondent": field("enum", domain="respondent"),
        "vital_status": field("enum", domain="vital_status"),
        "death_date": field("date"),
        "nrs": field("integer", between=(0, 10)),
        "satisfied": field("enum", domain="satisfied"),
        "dissatisfaction_reason": field(free_text=True),
        "systemic_opioid": field("enum", domain="systemic_opioid_after"),
    }),
}


@dataclass(frozen=True)
class CheckSpec:
    """One contract check in SQL form, for the DuckDB executor and the catalogue."""

    check_id: str
    file: str
    column: str
    check: str
    sql: str  # predicate that is TRUE when the row passes; uses {c} for the column
    message: str
    needs: tuple[str, ...] = ()  # other columns a row-level check reads


def check_specs(file: str) -> list[CheckSpec]:
    """The checks of one file's contract: column checks in column order, then row checks."""
    schema = CONTRACTS[file]
    placed = [(column, chk, ()) for column, col in schema.columns.items() for chk in col.checks]
    placed += [
        (chk.statistics["column"], chk,
         tuple(sorted(set(re.findall(r"\b(item|value|unit)\b", chk.statistics["sql"])))))
        for chk in schema.checks
    ]
    return [
        CheckSpec(check_id=f"raw.{file}.{column}.{chk.name}", file=file, column=column, check=chk.name,
                  sql=chk.statistics["sql"], message=chk.error, needs=needs)
        for column, chk, needs in placed
    ]


def required_columns(file: str) -> list[str]:
    """Columns whose absence from a delivered header refuses the file."""
    schema = CONTRACTS[file]
    return [c for c, col in schema.columns.items() if col.metadata.get("required")]


def phi_columns(file: str) -> list[str]:
    """Direct identifiers and raw MRNs of one file (masked wherever rows are shown)."""
    schema = CONTRACTS[file]
    return [c for c, col in schema.columns.items() if col.metadata.get("phi")]


def free_text_columns() -> list[str]:
    """Narrative columns of every file (truncated wherever quarantined rows are shown)."""
    return sorted({c for schema in CONTRACTS.values() for c, col in schema.columns.items()
                   if col.metadata.get("free_text")})


def key_column(file: str) -> str:
    return CONTRACTS[file].metadata["key"]
