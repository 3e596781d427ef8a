"""Ingestion never loses a row: loaded, quarantined with a reason, or a counted duplicate."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from idds.dq import ensure_dq_schema
from idds.ingest.files import DeliveryRefused, discover
from idds.ingest.load import ensure_raw_tables, is_new, load_delivery
from idds.mapping import load_mapping
from idds.warehouse import connect

KEY = "test-key-not-for-production-0001"

PATIENTS = (
    "patient_id,name,sex,birth_date,insurance_type\n"
    "0000000001,张三,男,1960/3/5,自费\n"
    '0000000002,"Li, Si",F,19600305,employee\n'
    '0000000002,"Li, Si",F,19600305,employee\n'  # exact duplicate
    "0000000003,王五,Q,not-a-date,employee\n"  # two contract failures
    "0000000004,赵六,M\n"  # too few fields
    '0000000005,"two\nlines",F,1950-01-01,other\n'  # a quoted name over two lines
    "0000000006,甲,M,1950-01-01,other\n"
    "0000000006,乙,M,1950-01-01,other\n"  # key conflict: both quarantined
    "0000000007,丙,2,1950年1月1日,城乡居民医保\n"
)


def write(path: Path, text: str, encoding: str = "utf-8", gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    if gz:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def load_all(settings, run_id="r1"):
    mapping = load_mapping()
    results = []
    with connect(settings.warehouse, KEY) as con:
        ensure_dq_schema(con)
        ensure_raw_tables(con, mapping)
        for delivery in discover(settings.landing, mapping):
            if is_new(con, delivery):
                try:
                    results.extend(load_delivery(con, run_id, delivery, mapping, settings.work))
                except DeliveryRefused:
                    break  # as the flow does: it and the later deliveries wait
    return results


def query(settings, sql, params=None):
    with connect(settings.warehouse, KEY) as con:
        return con.execute(sql, params or []).fetchall()


def test_every_record_is_loaded_quarantined_or_counted_as_duplicate(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    [fc] = load_all(settings)
    assert (fc.rows_read, fc.rows_loaded, fc.rows_quarantined, fc.rows_duplicate) == (9, 4, 4, 1)
    assert query(settings, "select count(*) from raw.patients")[0][0] == 4
    rec = query(settings, "select rows_read, rows_loaded + rows_quarantined + rows_duplicate from dq.dq_reconciliation")
    assert rec == [(9, 9)]


def test_quarantine_names_line_field_and_check(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings)
    rows = {r[0]: (r[1], r[2]) for r in query(
        settings, "select line_number, check_ids, reasons from dq.quarantine order by line_number")}
    assert rows[5][0] == ["raw.patients.sex.accepted", "raw.patients.birth_date.date"]
    assert rows[5][1].startswith("2024-01-01/patients.csv line 5: field sex ('Q')")
    assert rows[6][0] == ["raw.patients.record.malformed"]
    # the two-line record starts on line 7, so the conflicting pair sits on lines 9 and 10
    assert rows[9][0] == rows[10][0] == ["raw.patients.patient_id.unique"]
    assert "(identifier withheld)" in rows[9][1] and "0000000006" not in rows[9][1]


def test_lineage_columns_point_at_the_delivered_line(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings)
    rows = dict(query(settings, "select patient_id, _line_number from raw.patients"))
    assert rows == {"0000000001": 2, "0000000002": 3, "0000000005": 7, "0000000007": 11}
    lineage = query(settings, "select distinct _delivery_id, _source_file, _file_sha256, _run_id from raw.patients")
    digest = hashlib.sha256(PATIENTS.encode()).hexdigest()
    assert lineage == [("2024-01-01", "patients.csv", digest, "r1")]
    assert query(settings, "select name from raw.patients where patient_id = '0000000005'")[0][0] == "two\nlines"


@pytest.mark.parametrize("gb18030", [False, True])
def test_a_crlf_file_without_a_final_line_break_loads_every_record(settings, gb18030):
    # GB18030 takes the decoding pass, UTF-8 the direct read's fallback: both load the file
    text = PATIENTS.replace("\n", "\r\n").rstrip("\r\n")
    write(settings.landing / "2024-01-01" / "patients.csv", text, "gb18030" if gb18030 else "utf-8")
    (fc,) = load_all(settings)
    assert (fc.rows_read, fc.rows_loaded, fc.rows_quarantined, fc.rows_duplicate) == (9, 4, 4, 1)
    rows = dict(query(settings, "select patient_id, _line_number from raw.patients"))
    assert rows == {"0000000001": 2, "0000000002": 3, "0000000005": 7, "0000000007": 11}
    assert query(settings, "select birth_date from raw.patients where patient_id = '0000000007'") == [("1950年1月1日",)]


@pytest.mark.parametrize(
    "name, encoding, gz",
    [("patients.csv", "utf-8", False), ("患者信息.csv", "utf-8-sig", False),
     ("patients.csv", "gb18030", False), ("患者信息.csv.gz", "gb18030", True),
     ("patients.csv.gz", "utf-8-sig", True)],
)
def test_every_encoding_and_compression_loads_the_same_values(settings, name, encoding, gz):
    write(settings.landing / "2024-01-01" / name, PATIENTS, encoding, gz)
    [fc] = load_all(settings)
    assert fc.file_stem == "patients" and fc.rows_loaded == 4
    names = sorted(r[0] for r in query(settings, "select name from raw.patients"))
    assert names == sorted(["张三", "Li, Si", "two\nlines", "丙"])


def test_chinese_headers_any_order_and_unknown_columns_are_kept_as_drift(settings):
    text = "性别,病案号,备用字段,出生日期\n男,0000000001,x,1960-01-01\n"
    write(settings.landing / "2024-01-01" / "患者信息.csv", text, "gb18030")
    [fc] = load_all(settings)
    assert fc.rows_loaded == 1
    assert query(settings, "select patient_id, sex, extra_备用字段 from raw.patients") == [("0000000001", "男", "x")]
    assert query(settings, "select delivered_header, kept_as from dq.schema_drift") == [("备用字段", "extra_备用字段")]


def test_missing_required_column_refuses_the_file_and_quarantines_each_record(settings):
    write(settings.landing / "2024-01-01" / "followups.csv", "followup_id,patient_id,outcome\nF1,1,reached\nF2,2,lost\n")
    [fc] = load_all(settings)
    assert fc.status == "refused" and (fc.rows_read, fc.rows_quarantined, fc.rows_loaded) == (2, 2, 0)
    assert "required column contact_date is missing" in fc.message
    assert query(settings, "select count(*) from raw.followups")[0][0] == 0
    lines = query(settings, "select line_number, check_ids from dq.quarantine order by 1")
    assert lines == [(2, ["raw.followups.contact_date.column_missing"]), (3, ["raw.followups.contact_date.column_missing"])]


def _manifest(folder: Path, **override) -> None:
    files = {}
    for path in sorted(folder.iterdir()):
        files[path.name] = {"rows": 9, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    files.update(override)
    (folder / "manifest.json").write_text(json.dumps({"delivery_id": folder.name, "files": files}))


def test_a_matching_manifest_loads(settings):
    folder = settings.landing / "2024-01-01"
    write(folder / "patients.csv", PATIENTS)
    _manifest(folder)
    assert load_all(settings)[0].rows_loaded == 4


@pytest.mark.parametrize("override", [{"rows": 8}, {"sha256": "0" * 64}])
def test_a_broken_manifest_refuses_the_whole_delivery(settings, override):
    folder = settings.landing / "2024-01-01"
    write(folder / "admissions.csv", "admission_id,patient_id,admit_time\nA1,0000000001,2022-01-01 08:00\n")
    write(folder / "patients.csv", PATIENTS)
    _manifest(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["patients.csv"].update(override)
    manifest["files"]["admissions.csv"]["rows"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert load_all(settings) == []
    [(status, message)] = query(settings, "select status, message from dq.dq_delivery")
    assert status == "refused" and "patients.csv" in message and message.endswith("nothing of it was loaded.")
    assert query(settings, "select count(*) from raw.patients")[0][0] == 0
    assert query(settings, "select count(*) from raw.admissions")[0][0] == 0
    assert query(settings, "select count(*) from dq.dq_reconciliation")[0][0] == 0
    assert query(settings, "select count(*) from dq.quarantine")[0][0] == 0


def test_a_rerun_and_a_resent_file_change_nothing(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings, "r1")
    before = query(settings, "select * exclude (_loaded_at, _run_id) from raw.patients order by all")
    assert load_all(settings, "r2") == []  # nothing new
    write(settings.landing / "2024-02-01" / "患者信息.csv", PATIENTS)  # the same bytes re-sent
    [fc] = load_all(settings, "r3")
    assert fc.status == "resent" and (fc.rows_read, fc.rows_duplicate, fc.rows_loaded) == (9, 9, 0)
    assert query(settings, "select * exclude (_loaded_at, _run_id) from raw.patients order by all") == before


def test_a_crash_between_files_leaves_nothing_and_the_rerun_loads_the_delivery_whole(settings, tmp_path):
    folder = settings.landing / "2024-01-01"
    write(folder / "admissions.csv", "admission_id,patient_id,admit_time\nA1,0000000001,2022-01-01 08:00\n")
    write(folder / "patients.csv", PATIENTS)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from idds.dq import ensure_dq_schema
        from idds.ingest.files import discover
        from idds.ingest.load import ensure_raw_tables, load_delivery
        from idds.mapping import load_mapping
        from idds.warehouse import connect
        m = load_mapping()
        with connect(Path({str(settings.warehouse)!r}), {KEY!r}) as con:
            ensure_dq_schema(con); ensure_raw_tables(con, m)
            for d in discover(Path({str(settings.landing)!r}), m):
                load_delivery(con, "crashed", d, m, Path({str(settings.work)!r}))
    """)
    env = {**__import__("os").environ, "IDDS_FAULT": "between-files"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 86, proc.stderr
    assert query(settings, "select count(*) from raw.admissions")[0][0] == 0
    assert query(settings, "select count(*) from dq.ingest_file")[0][0] == 0
    load_all(settings, "rerun")
    crashed_then_rerun = query(settings, "select * exclude (_loaded_at, _run_id) from raw.patients order by all")

    clean = settings.__class__(**{**settings.__dict__, "warehouse": tmp_path / "clean.duckdb"})
    load_all(clean, "rerun")
    assert query(clean, "select * exclude (_loaded_at, _run_id) from raw.patients order by all") == crashed_then_rerun


def test_a_quarantined_patient_record_keeps_no_mrn_as_its_record_key(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings)
    keys = query(settings, "select distinct record_key from dq.quarantine")
    assert keys == [(None,)]


def test_decoded_copies_with_identifiers_are_removed_after_loading(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS, "gb18030")
    load_all(settings)
    leftovers = [p for p in settings.work.rglob("*") if p.is_file()] if settings.work.exists() else []
    assert leftovers == []
