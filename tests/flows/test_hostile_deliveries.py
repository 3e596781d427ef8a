"""Hostile and broken deliveries, built here by hand: nothing lost, nothing leaked.

Each test adds one delivery to a copy of the published paper-profile run and runs
`idds run`: the exit code, the first cause in plain words, every delivered record
accounted for (a CSV reader's own count), and no identifier of the delivered bytes in
the analyst file or the reports.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import copy_of, latest_raw, run_cli

pytestmark = pytest.mark.slow

NAME, PHONE, ID_CARD = "欧阳娜娜", "13912345678", "11010519491231002X"


def query(path, sql, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def published(pipeline_run, tmp_path):
    source, code = pipeline_run
    assert code == 0
    settings = copy_of(source, tmp_path)
    return settings, settings.publish.read_bytes()


def run(settings, capsys, *extra) -> tuple[int, str, str]:
    code = run_cli(settings, *extra)
    out = capsys.readouterr()
    return code, out.out, out.err


def csv_records(data: bytes) -> int:
    """A CSV reader's own count of the data records of delivered bytes (header excluded)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8-sig", errors="replace")
    return sum(1 for row in csv.reader(io.StringIO(text)) if row) - 1


def leaks(settings, needles) -> list[str]:
    """Where any of ``needles`` appears: a text value of the analyst file, or a report file."""
    found = []
    con = duckdb.connect(str(settings.publish), read_only=True)
    try:
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where data_type in ('VARCHAR', 'JSON') or data_type like '%[]'").fetchall():
            for needle in needles:
                hit = con.execute(f'select count(*) from "{schema}"."{table}" '
                                  f'where cast("{column}" as varchar) like ?', [f"%{needle}%"]).fetchall()[0][0]
                if hit:
                    found.append(f"{schema}.{table}.{column}: {needle}")
    finally:
        con.close()
    for path in settings.reports.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json", ".csv", ".txt"):
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.name}: {n}" for n in needles if n in text]
    return found


def refused_run(settings, before, capsys, folder: str, *expected: str) -> str:
    """The delivery ``folder`` is refused: exit 1, its cause first, nothing of it loaded, the
    published file untouched; returns stdout."""
    code, out, _ = run(settings, capsys)
    assert code == 1
    verdict = next(line for line in out.splitlines() if "verdict blocked" in line)
    assert "Blocked: A delivery was refused: delivery " + folder in verdict
    for text in expected:
        assert text in verdict, (text, verdict)
    assert "(pipeline.delivery.refused)" in verdict
    assert settings.publish.read_bytes() == before
    for (table,) in query(settings.warehouse, "select table_name from information_schema.tables "
                                               "where table_schema = 'raw'"):
        assert query(settings.warehouse, f"select count(*) from raw.{table} where _delivery_id = ?",
                     [folder]) == [(0,)], table
    assert query(settings.warehouse, "select status from dq.dq_delivery where delivery_id = ? "
                                     "order by run_id desc limit 1", [folder]) == [("refused",)]
    html = (settings.reports / "latest" / "validation.html").read_text(encoding="utf-8")
    assert "pipeline.delivery.refused" in html and folder in html
    return out


def patients_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return out.getvalue()


def test_a_truncated_gzip_refuses_its_delivery(published, capsys):
    settings, before = published
    data = gzip.compress(patients_csv(latest_raw(settings, "patients")[:50]).encode())
    folder = settings.landing / "9999-01-01"
    folder.mkdir()
    (folder / "patients.csv.gz").write_bytes(data[: len(data) // 2])
    refused_run(settings, before, capsys, "9999-01-01", "patients.csv.gz cannot be read")


def test_a_utf8_file_with_a_gb18030_line_is_refused_at_that_line_never_read_as_gb18030(published, capsys):
    settings, before = published
    rows = latest_raw(settings, "patients")[:30]
    lines = patients_csv(rows).splitlines(keepends=True)
    foreign = lines[20].replace(rows[19]["patient_id"], "王五").encode("gb18030")  # physical line 21
    head = "".join(lines[:20]).encode("utf-8")
    folder = settings.landing / "9999-01-02"
    folder.mkdir()
    (folder / "patients.csv").write_bytes(head + foreign + "".join(lines[21:]).encode("utf-8"))
    offset = len(head) + foreign.index("王五".encode("gb18030"))
    refused_run(settings, before, capsys, "9999-01-02",
                f"patients.csv is UTF-8 but not valid UTF-8 at byte {offset} (line 21)")


def test_a_file_without_its_header_row_is_refused_and_its_first_record_never_shown(published, capsys):
    settings, before = published
    rows = latest_raw(settings, "patients")[:10]
    rows[0] = {**rows[0], "name": NAME, "phone": PHONE, "id_number": ID_CARD}
    text = patients_csv(rows).split("\n", 1)[1]  # the header row dropped
    folder = settings.landing / "9999-01-03"
    folder.mkdir()
    (folder / "patients.csv").write_text(text, encoding="utf-8")
    refused_run(settings, before, capsys, "9999-01-03", "patients.csv has no header line")
    assert query(settings.warehouse, "select count(*) from dq.schema_drift where delivery_id = '9999-01-03'") == [(0,)]
    assert leaks(settings, [NAME, PHONE, ID_CARD, rows[0]["patient_id"]]) == []


def test_symbolic_links_are_refused_never_followed(published, capsys, tmp_path):
    settings, before = published
    folder = settings.landing / "9999-01-04"
    folder.mkdir()
    (folder / "patients.csv").symlink_to("/etc/passwd")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "admissions.csv").write_text("admission_id,patient_id,admit_time\nA1,1,2022-01-01\n")
    (settings.landing / "9999-01-05").symlink_to(outside, target_is_directory=True)
    refused_run(settings, before, capsys, "9999-01-04", "patients.csv is a symbolic link")
    assert query(settings.warehouse, "select count(*) from dq.ingest_file where delivery_id like '9999-01-0%'") == [(0,)]
    # once the broken one is redelivered, the symlinked folder is refused in its turn
    (folder / "patients.csv").unlink()
    folder.rmdir()
    refused_run(settings, before, capsys, "9999-01-05", "9999-01-05 is a symbolic link")


def test_a_file_still_being_copied_waits_for_the_next_run(published, capsys, monkeypatch):
    settings, before = published
    rows = latest_raw(settings, "patients")
    folder = settings.landing / "9999-01-06"
    folder.mkdir()
    text = patients_csv(rows)
    (folder / "patients.csv").write_text(text[: len(text) // 3], encoding="utf-8")  # copied in part
    monkeypatch.setenv("IDDS_QUIET_SECONDS", "300")
    code, out, _ = run(settings, capsys)
    assert code == 0 and "nothing to do" in out
    assert "delivery 9999-01-06 has no manifest and patients.csv changed" in out
    assert settings.publish.read_bytes() == before
    (folder / "patients.csv").write_text(text, encoding="utf-8")  # the copy completes
    monkeypatch.setenv("IDDS_QUIET_SECONDS", "0")
    code, _, _ = run(settings, capsys)
    assert code == 0
    [(read, loaded, quarantined, duplicate)] = query(
        settings.warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_duplicate "
                            "from dq.dq_reconciliation where delivery_id = '9999-01-06'")
    assert read == csv_records(text.encode()) == len(rows) == loaded + quarantined + duplicate


def test_one_key_in_two_files_of_a_delivery_is_a_conflict(published, capsys):
    settings, _ = published
    rows = latest_raw(settings, "patients")[:20]
    folder = settings.landing / "9999-01-07"
    folder.mkdir()
    (folder / "patients.csv").write_text(patients_csv(rows), encoding="utf-8")
    other = [{**rows[0], "sex": "F" if rows[0]["sex"] not in ("F", "女") else "M"}, rows[1]]
    (folder / "患者信息.csv").write_text(patients_csv(other), encoding="utf-8")
    code, _, _ = run(settings, capsys)
    assert code == 0
    recon = dict((r[0], r[1:]) for r in query(
        settings.warehouse, "select source_file, rows_read, rows_loaded, rows_quarantined, rows_duplicate "
                            "from dq.dq_reconciliation where delivery_id = '9999-01-07'"))
    assert recon == {"patients.csv": (20, 19, 1, 0), "患者信息.csv": (2, 0, 1, 1)}
    conflicts = query(settings.warehouse, "select source_file, line_number, check_ids from dq.quarantine "
                                          "where delivery_id = '9999-01-07' order by 1")
    assert conflicts == [("patients.csv", 2, ["raw.patients.patient_id.unique"]),
                         ("患者信息.csv", 2, ["raw.patients.patient_id.unique"])]
    assert query(settings.warehouse, "select count(*) from raw.patients where _delivery_id = '9999-01-07' "
                                     "and patient_id = ?", [rows[0]["patient_id"]]) == [(0,)]


def test_a_repeated_column_is_drift_and_an_oversize_record_says_its_size(published, capsys):
    settings, _ = published
    rows = latest_raw(settings, "adverse_events")[:5]
    header = list(rows[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, header[-1]])
    writer.writerows([*("" if r[c] is None else r[c] for c in header), ""] for r in rows)
    text = out.getvalue() + ",".join(["x"] * 5000) + "\n"
    folder = settings.landing / "9999-01-08"
    folder.mkdir()
    (folder / "adverse_events.csv").write_text(text, encoding="utf-8")
    code, _, _ = run(settings, capsys)
    assert code == 0
    drift = query(settings.warehouse, "select delivered_header, kept_as from dq.schema_drift "
                                      "where delivery_id = '9999-01-08'")
    assert drift == [(f"{header[-1]} (the header names this column again)", f"{header[-1]}_dup")]
    [(read, loaded, quarantined)] = query(settings.warehouse, "select rows_read, rows_loaded, rows_quarantined "
                                                              "from dq.dq_reconciliation where delivery_id = '9999-01-08'")
    assert (read, loaded, quarantined) == (csv_records(text.encode()), 5, 1)
    [(reason,)] = query(settings.warehouse, "select reasons from dq.quarantine where delivery_id = '9999-01-08'")
    line = out.getvalue().count("\n") + 1  # physical line of the oversize record (notes span lines)
    assert f"line {line}: the record is not a valid CSV record of this header (it holds about 5000" in reason
    assert f"where the header has {len(header) + 1} fields" in reason


def test_a_refused_delivery_blocks_every_run_until_redelivered_and_names_every_file(published, capsys):
    import json

    settings, before = published
    rows = latest_raw(settings, "patients")[:5]
    folder = settings.landing / "9999-01-09"
    folder.mkdir()
    (folder / "patients.csv").write_text(patients_csv(rows), encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"delivery_id": "9999-01-09", "files": {
        "patients.csv": {"rows": 5}, "admissions.csv": {"rows": 3}, "followups.csv": {"rows": 2}}}))
    for _ in range(2):
        out = refused_run(settings, before, capsys, "9999-01-09", "admissions.csv, which is missing",
                          "followups.csv, which is missing")
    assert "Nothing of it is loaded until the hospital redelivers it" in out


def test_a_prefect_server_that_does_not_start_is_one_clear_message(published, tmp_path):
    settings, before = published
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0")
    folder = settings.landing / "9999-01-10"
    folder.mkdir()
    (folder / "patients.csv").write_text(patients_csv(latest_raw(settings, "patients")[:3]), encoding="utf-8")
    # files, not pipes: a server process that outlives the run must not hold the test up
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "idds.cli", "run", "--landing", str(settings.landing), "--warehouse",
             str(settings.warehouse), "--publish", str(settings.publish), "--reports", str(settings.reports)],
            stdout=out, stderr=err, env=env, timeout=300, cwd=Path(__file__).resolve().parents[2])
    stderr = (tmp_path / "err.txt").read_text()
    assert done.returncode == 1, stderr[-2000:]
    assert "trying once more" in stderr
    assert "error: the temporary Prefect server did not start within 0 s twice" in stderr
    assert "Traceback" not in stderr
    # no temporary server of that run is left behind (a second start must stop the first)
    marker = f"PREFECT_HOME={tmp_path / 'prefect'}".encode()
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes():
                left.append(proc.name)
        except OSError:
            continue
    assert left == []
    assert settings.publish.read_bytes() == before
