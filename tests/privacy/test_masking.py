"""The quarantine shown outside the warehouse is masked (idds.publish.masked_quarantine_sql)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from idds.dq import ensure_dq_schema
from idds.ingest.files import discover
from idds.ingest.load import ensure_raw_tables, is_new, load_delivery
from idds.mapping import load_mapping
from idds.publish import _phi_names, masked_quarantine_sql, publish
from idds.warehouse import connect

KEY = "test-key-not-for-production-0001"

# (file_stem, line, record_key, patient_id, raw_row, reasons)
ROWS = [
    ("patients", 5, "0000000003", "0000000003", {
        "patient_id": "0000000003", "name": "王五", "id_number": "11010819730718427X",
        "phone": "13800138000", "sex": "Q", "birth_date": "not-a-date", "insurance_type": "employee"},
     "patients.csv line 5: field sex ('Q') is not an accepted sex code or label."),
    ("admissions", 7, "ZY00000007", "0000000004", {
        "admission_id": "ZY00000007", "patient_id": "0000000004", "admit_time": "2022-02-30 08:00",
        "department": "肿瘤内科", "total_charge": "约15万"},
     "admissions.csv line 7: field admit_time ('2022-02-30 08:00') is not a date-time."),
    ("patients", 9, "0000000006", "0000000006", {
        "patient_id": "0000000006", "name": 'Li "the elder", Si\\', "phone": "+86 139-0013-9000",
        "id_number": None, "sex": "M"},
     "patients.csv line 9: field patient_id ('(identifier withheld)') is a key that another record holds."),
]
MALFORMED = ("patients", 6, None, None, "0000000004,赵六,M,13912345678", "patients.csv line 6: not a valid CSV record.")
IDENTIFIERS = ["0000000003", "0000000004", "0000000006", "王五", "赵六", "11010819730718427X",
               "13800138000", "13912345678", "Li \\\"the elder\\\", Si", "the elder", "139-0013-9000"]


@pytest.fixture
def quarantine(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with connect(path, KEY) as con:
        ensure_dq_schema(con)
        for stem, line, record_key, patient_id, raw, reasons in ROWS:
            con.execute(
                "insert into dq.quarantine values ('r1', '2024-01-01', ?, ?, ?, ?, ?, ?, ['c1'], ?)",
                [f"{stem}.csv", stem, line, record_key, patient_id, json.dumps(raw, ensure_ascii=False,
                                                                                separators=(",", ":")), reasons])
        stem, line, record_key, patient_id, raw, reasons = MALFORMED
        con.execute("insert into dq.quarantine values ('r1', '2024-01-01', ?, ?, ?, ?, ?, ?, ['c2'], ?)",
                    [f"{stem}.csv", stem, line, record_key, patient_id, raw, reasons])
    return path


def masked_rows(path) -> list[dict]:
    with connect(path, KEY) as con:
        cur = con.execute(f"select * from ({masked_quarantine_sql()}) order by file_stem desc, line_number")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            if r["line_number"] in (5, 7, 9):
                src = {5: "0000000003", 7: "0000000004", 9: "0000000006"}[r["line_number"]]
                r["expected_key"] = con.execute("select idds_patient_key(?)", [src]).fetchall()[0][0]
        return rows


def test_the_identifier_fields_are_the_contracts_phi_fields():
    assert {"patient_id", "name", "id_number", "phone"} <= set(_phi_names())


def test_identifier_fields_are_replaced_and_the_rest_kept(quarantine):
    rows = {r["line_number"]: r for r in masked_rows(quarantine)}
    patient = json.loads(rows[5]["raw_row"])
    assert patient["name"] == patient["id_number"] == patient["phone"] == patient["patient_id"] == "***"
    assert patient["sex"] == "Q" and patient["birth_date"] == "not-a-date" and patient["insurance_type"] == "employee"
    admission = json.loads(rows[7]["raw_row"])
    assert admission["patient_id"] == "***"
    assert admission["admission_id"] == "ZY00000007" and admission["department"] == "肿瘤内科"
    assert admission["total_charge"] == "约15万" and admission["admit_time"] == "2022-02-30 08:00"
    escaped = json.loads(rows[9]["raw_row"])  # quotes and a backslash inside a name
    assert escaped["name"] == "***" and escaped["phone"] == "***" and escaped["id_number"] is None
    assert escaped["sex"] == "M"
    for line in (5, 7, 9):
        assert rows[line]["patient_key"] == rows[line]["expected_key"]
        assert "patient_id" not in rows[line]
    assert rows[7]["reasons"].startswith("admissions.csv line 7")  # reasons are kept


def test_malformed_raw_lines_are_withheld(quarantine):
    rows = {r["line_number"]: r for r in masked_rows(quarantine)}
    assert rows[6]["raw_row"].startswith("(malformed record withheld")
    assert str(len(MALFORMED[4])) in rows[6]["raw_row"]
    assert rows[6]["patient_key"] is None


def test_no_identifier_in_the_masked_raw_rows_and_keys(quarantine):
    rows = masked_rows(quarantine)
    shown = repr([(r["patient_key"], r["raw_row"], r["reasons"]) for r in rows])
    for identifier in IDENTIFIERS:
        assert identifier not in shown, identifier


def test_no_identifier_in_any_column_of_the_masked_quarantine(quarantine):
    shown = repr(masked_rows(quarantine))
    for identifier in IDENTIFIERS:
        assert identifier not in shown, identifier


PATIENTS = (
    "patient_id,name,id_number,phone,sex,birth_date,insurance_type\n"
    "0000000001,张三,110108196610089532,13829496313,男,1960/3/5,自费\n"
    "0000000003,王五,11010819730718427X,13800138000,Q,not-a-date,employee\n"
    "0000000004,赵六,M\n"
    "0000000006,甲乙,120101196407073030,18678660034,M,1950-01-01,other\n"
    "0000000006,丙丁,210102196405310774,13819920629,M,1950-01-01,other\n"
)
PATIENT_IDENTIFIERS = ["0000000003", "0000000004", "0000000006", "王五", "赵六", "甲乙", "丙丁",
                       "11010819730718427X", "120101196407073030", "210102196405310774",
                       "13800138000", "18678660034", "13819920629"]


@pytest.fixture
def published(settings):
    """Quarantined patient rows loaded by the real ingestion, then published."""
    path = settings.landing / "2024-01-01" / "patients.csv"
    path.parent.mkdir(parents=True)
    path.write_text(PATIENTS, encoding="utf-8")
    mapping = load_mapping()
    with connect(settings.warehouse, KEY) as con:
        ensure_dq_schema(con)
        ensure_raw_tables(con, mapping)
        for delivery in discover(settings.landing, mapping):
            if is_new(con, delivery):
                load_delivery(con, "r1", delivery, mapping, settings.work / "ingest" / "r1")
        assert con.execute("select count(*) from dq.quarantine").fetchall()[0][0] == 4
        con.execute("create table marts.cohort_idds as select 1 as n")
        publish(con, settings.publish)
    return settings


def published_quarantine(settings, columns: str) -> str:
    con = duckdb.connect(str(settings.publish), read_only=True)
    try:
        return repr(con.execute(f"select {columns} from dq.quarantine").fetchall())
    finally:
        con.close()


def test_published_quarantine_raw_rows_reasons_and_keys_are_masked(published):
    shown = published_quarantine(published, "file_stem, line_number, patient_key, raw_row, reasons, check_ids")
    for identifier in PATIENT_IDENTIFIERS:
        assert identifier not in shown, identifier
    assert "pk_" in shown and '"sex":"Q"' in shown


def test_published_quarantine_has_no_identifier_in_any_column(published):
    shown = published_quarantine(published, "*")
    for identifier in PATIENT_IDENTIFIERS:
        assert identifier not in shown, identifier


def test_narrative_text_is_withheld_in_the_masked_quarantine():
    """A note may begin with a relative's name and phone: truncating it would keep them,
    so only its length is shown."""
    import duckdb

    from idds.publish import masked_quarantine_sql
    from idds.warehouse import install_functions

    con = duckdb.connect()
    install_functions(con, "a-test-key-of-enough-length")
    con.execute("create schema dq")
    con.execute("create table dq.quarantine (run_id varchar, delivery_id varchar, source_file varchar, "
                "file_stem varchar, line_number bigint, record_key varchar, patient_id varchar, raw_row varchar, "
                "check_ids varchar[], reasons varchar)")
    long_note = "患者家属诉术后疼痛明显缓解，夜间可入睡，但仍需口服止痛药物"
    con.execute("insert into dq.quarantine values ('r', 'd', 'f.csv', 'adverse_events', 2, 'E1', '0012345678', ?, "
                "['x'], 'why')", ['{"event_id":"E1","patient_id":"0012345678","note":"' + long_note + '"}'])
    raw_row, record_key = con.execute(f"select raw_row, record_key from ({masked_quarantine_sql()})").fetchall()[0]
    assert long_note[:2] not in raw_row
    assert json.loads(raw_row)["note"] == f"(free text withheld: {len(long_note)} characters)"
    assert '"patient_id":"***"' in raw_row and record_key == "E1"


def test_the_stewards_local_quarantine_view_is_masked_unless_asked(settings, capsys):
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_ingest import PATIENTS, load_all, write

    from idds.cli import main

    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings)
    assert main(["quarantine", "--warehouse", str(settings.warehouse)]) == 0
    masked = capsys.readouterr().out
    assert "line 5" in masked and "王五" not in masked and "0000000003" not in masked
    assert main(["quarantine", "--warehouse", str(settings.warehouse), "--unmasked"]) == 0
    unmasked = capsys.readouterr().out
    assert "UNMASKED" in unmasked and "王五" in unmasked
