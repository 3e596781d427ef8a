"""The direct read (DuckDB reads a delivered UTF-8 file as it is) gives exactly what the
decoding pass (prepare() and its numbered copy) gives, or leaves the file to that pass."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

import duckdb
import pytest
from test_ingest import load_all, query

from idds.ingest import files
from idds.ingest.files import DIRECT_ENV, prepare, read_csv_sql, read_direct, scan_direct

HEADER = "id,note,dose\n"


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = false")  # as on the warehouse connection
    con.execute("begin transaction")  # as in load_delivery
    yield con
    con.close()


def _slow(con, path: Path, work: Path):
    """What load_file built before the direct read: prepare(), then the numbered copy read."""
    prepared = prepare(path, work / "numbered.csv")
    names = [f"c{i}" for i in range(len(prepared.header))]
    con.execute("drop table if exists _rej; drop table if exists _rej_scan; drop table if exists _load")
    con.execute(f"create temp table _load as select * from {read_csv_sql(prepared.path, ['_line_number', *names])}")
    return _result(con, prepared.records, prepared.encoding, prepared.header)


def _fast(con, path: Path, work: Path):
    """The direct read, or None when it leaves the file to prepare()."""
    _, direct = scan_direct(path, work / "copy.csv")
    if direct is None:
        return None
    records = read_direct(con, direct, [f"c{i}" for i in range(len(direct.header))])
    if records is None:
        assert con.execute("select count(*) from duckdb_tables() where table_name = '_load'").fetchall() == [(0,)]
        return None
    return _result(con, records, direct.encoding, direct.header)


def _result(con, records, encoding, header):
    rows = con.execute("select * from _load").fetchall()
    columns = [r[0] for r in con.execute("describe _load").fetchall()]
    types = {r[1] for r in con.execute("describe _load").fetchall()}
    rejected = con.execute("select count(*) from _rej").fetchall()[0][0]
    return {"records": records, "encoding": encoding, "header": header, "columns": columns, "types": types,
            "rejected": rejected, "rows": sorted(rows, key=repr)}


def _write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _both(con, tmp_path, data: bytes, gz: bool = False):
    path = _write(tmp_path / ("in.csv.gz" if gz else "in.csv"), data, gz)
    return _fast(con, path, tmp_path / "work"), _slow(con, path, tmp_path / "work")


NOTES = (
    HEADER
    + "1,plain,5mg\n"
    + '2,"two\nlines",5mg\n'
    + '3,"a ""quoted"" word, and\n\nan empty line inside",10mg\n'
    + "4,last,\n"
)
# the physical line each record starts on, as the numbered copy has it
NOTES_LINES = ["2", "3", "5", "8"]

TAKEN = [
    ("multi-line quoted notes", NOTES.encode(), False),
    ("CRLF with CRLF inside a note", NOTES.replace("\n", "\r\n").encode(), False),
    ("BOM", b"\xef\xbb\xbf" + NOTES.encode(), False),
    ("gzip", NOTES.encode(), True),
    ("gzip with BOM, CRLF", b"\xef\xbb\xbf" + NOTES.replace("\n", "\r\n").encode(), True),
    ("no final newline", NOTES.encode()[:-1], False),
    ("no final newline, gzip", NOTES.encode()[:-1], True),
    ("no quote at all", (HEADER + "".join(f"{i},n{i},{i}mg\n" for i in range(1, 500))).encode(), False),
    ("header only", HEADER.encode(), False),
    ("header only, no newline", HEADER.encode()[:-1], False),
    ("quoted header, quotes inside an unquoted field", b'"id","note",dose\n1,a"b"c,2\n2,"x,\ny",3\n', False),
    ("spaces after a closing quote", b'id,note,dose\n1,"a\nb"  ,2\n2,c,3\n', False),
    ("a record over DuckDB's size limit is no reject here", b"id,note,dose\n1," + b"x" * 5000 + b",2\n", False),
]


@pytest.mark.parametrize("label, data, gz", TAKEN, ids=[t[0] for t in TAKEN])
def test_the_direct_read_gives_the_numbered_copys_records_and_line_numbers(con, tmp_path, label, data, gz):
    fast, slow = _both(con, tmp_path, data, gz)
    assert fast is not None, "the direct read should take this file"
    assert fast == slow
    assert fast["columns"][0] == "_line_number" and fast["types"] == {"VARCHAR"}


def test_line_numbers_count_the_lines_inside_quoted_notes(con, tmp_path):
    for data, gz in [(NOTES.encode(), False), (NOTES.replace("\n", "\r\n").encode(), True)]:
        fast, _ = _both(con, tmp_path, data, gz)
        assert fast["records"] == 4
        assert sorted((r[0] for r in fast["rows"]), key=int) == NOTES_LINES


LEFT = [
    ("a blank line", (HEADER + "1,a,b\n\n2,c,d\n").encode(), False),
    ("a blank line at the end", (HEADER + "1,a,b\n2,c,d\n\n").encode(), False),
    ("a whitespace line", (HEADER + "1,a,b\n \t\n2,c,d\n").encode(), False),
    ("a blank CRLF line", (HEADER + "1,a,b\n\n2,c,d\n").replace("\n", "\r\n").encode(), False),
    ("a blank first line", ("\n" + HEADER + "1,a,b\n").encode(), False),
    ("a broken quote", (HEADER + '1,"a,b\n2,c,d\n3,e,f\n').encode(), False),
    ("text after a closing quote", (HEADER + '1,"a"b,c\n2,c,d\n').encode(), False),
    ("too few fields", (HEADER + "1,a\n2,c,d\n").encode(), False),
    ("a quote after spaces", (HEADER + '1, "a\nb",c\n2,c,d\n').encode(), False),
    ("a quote after spaces on one line", (HEADER + '1, "a,"""\n2,c,d\n').encode(), False),
    ("mixed line endings", (HEADER + "1,a,b\r\n2,c,d\n").encode(), False),
    ("an LF inside a note of a CRLF file", (HEADER.replace("\n", "\r\n") + '1,"a\nb",c\r\n').encode(), False),
    ("a lone CR", (HEADER + "1,a,b\r2,c,d\n").encode(), False),
    ("a field too many and one too few", (HEADER + "1,a,b,c\n2,c\n").encode(), False),
    ("CRLF without a final line break", (HEADER + "1,a,b\n2,c,d").replace("\n", "\r\n").encode(), False),
    ("GB18030", (HEADER + "1,中文,b\n").encode("gb18030"), False),
    ("GB18030, gzip", (HEADER + "1,中文,b\n").encode("gb18030"), True),
    ("invalid UTF-8 late in the file", (HEADER + "1,a,b\n" * 200_000 + "2,\xff,c\n").encode("latin-1"), False),
    ("a BOM before a quoted header", b'\xef\xbb\xbf"id",note,dose\n1,a,b\n', False),
    ("one column", b"id\n1\n \n2\n", False),
    ("an empty file", b"", False),
    ("a truncated gzip", b"", "truncated"),
]


@pytest.mark.parametrize("guess", [True, False], ids=["", "even if the counts look well-formed"])
@pytest.mark.parametrize("label, data, gz", LEFT, ids=[t[0] for t in LEFT])
def test_files_it_cannot_prove_exact_are_left_to_the_decoding_pass(con, tmp_path, monkeypatch, label, data, gz,
                                                                   guess):
    if not guess:  # the guess that skips a read bound to fail is not what keeps the result exact
        monkeypatch.setattr(files, "_looks_well_formed", lambda *a: True)
    if gz == "truncated":
        path = tmp_path / "in.csv.gz"
        whole = gzip.compress((HEADER + "".join(f"{i},{i * 7919 % 10007},x\n" for i in range(5000))).encode())
        path.write_bytes(whole[: len(whole) // 2])
    else:
        path = _write(tmp_path / ("in.csv.gz" if gz else "in.csv"), data, gz)
    assert _fast(con, path, tmp_path / "work") is None
    # and the transaction is still usable: nothing raised inside DuckDB
    assert con.execute("select 1").fetchall() == [(1,)]


def test_the_guess_only_chooses_which_read_comes_first(con, tmp_path, monkeypatch):
    data = (HEADER + '1,5",b\n2,c,d\n').encode()  # an odd quote: a malformed record, guessed
    assert _both(con, tmp_path, data)[0] is None
    monkeypatch.setattr(files, "_looks_well_formed", lambda *a: True)
    fast, slow = _both(con, tmp_path, data)  # but it is a record like any other
    assert fast is not None and fast == slow


def test_a_path_that_duckdb_would_glob_is_left_to_the_decoding_pass(con, tmp_path):
    path = _write(tmp_path / "orders[1].csv", NOTES.encode())
    assert scan_direct(path, tmp_path / "work" / "copy.csv") == (path, None)


def test_a_long_file_with_notes_across_chunk_boundaries(con, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 64)  # every record crosses a chunk boundary somewhere
    rng = random.Random(5)
    lines = [HEADER.rstrip("\n")]
    for i in range(400):
        note = rng.choice(["plain", '"a\nb"', '"x, ""y"""', '"\n\n"', "", '"  spaced  "', "中文"])
        lines.append(f"{i},{note},{rng.randint(1, 99)}mg")
    text = "\n".join(lines) + "\n"
    for data, gz in [(text, False), (text.replace("\n", "\r\n"), True)]:
        fast, slow = _both(con, tmp_path, data.encode(), gz)
        assert fast is not None and fast == slow
        assert len({r[0] for r in fast["rows"]}) == 400


def test_a_file_read_in_parallel_keeps_every_record_on_its_line(con, tmp_path):
    """Some 60 MB: DuckDB reads the file in parallel, and without the preserved insertion
    order the rowids would not follow the file (checked: most records would be misnumbered)."""
    rows = [f"{line},{'x' * (line % 90)},{line % 7}mg" for line in range(2, 1_100_002)]
    path = _write(tmp_path / "big.csv", ("id,note,dose\n" + "\n".join(rows) + "\n").encode())
    assert path.stat().st_size > 55_000_000
    _, direct = scan_direct(path, tmp_path / "copy.csv")
    assert read_direct(con, direct, ["id", "note", "dose"]) == 1_100_000
    assert con.execute("select count(*) from _load where _line_number <> id").fetchall() == [(0,)]


def test_a_quote_after_spaces_across_a_chunk_boundary_is_seen(con, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 16)
    for pad in range(0, 20):
        data = (HEADER + "1,a,b\n" + "x" * pad + ',   "a\nb",c\n').encode()
        assert _fast(con, _write(tmp_path / "in.csv", data), tmp_path / "work") is None, pad


def test_quotes_after_spaces_are_found_whether_quotes_are_few_or_many():
    def reference(buf: bytes, starts_field: bool, final: bool) -> bool:
        for m in re.finditer(rb'(?<! ) +("+)', buf):
            before = buf[m.start() - 1:m.start()]
            if (before in (b",", b"\r", b"\n", b'"') if before else starts_field) and len(m.group(1)) % 2 \
                    and (final or m.end() < len(buf)):
                return True
        return False

    rng = random.Random(8)
    for _ in range(20_000):
        quote = rng.choice([0.002, 0.05, 0.3])
        buf = bytes(rng.choices(b' ",\na', [0.3, quote, 0.1, 0.05, 0.6 - quote], k=rng.choice([5, 40, 2000])))
        for starts_field, final in [(True, True), (False, False)]:
            assert files._quote_after_spaces(buf, starts_field, final) == reference(buf, starts_field, final), buf


def test_random_files_are_either_identical_or_left_to_the_decoding_pass(con, tmp_path):
    rng = random.Random(20240601)
    pieces = ["a", "1", "中", " ", ",", ",", '"', '""', "\n", "\n", "\r\n", "\r", "\t", ' "', "\u3000"]
    taken = 0
    for case in range(300):
        ncols = rng.randint(1, 4)
        nl = "\r\n" if case % 3 == 0 else "\n"
        rows = [",".join(f"h{i}" for i in range(ncols))]
        for _ in range(rng.randint(0, 6)):
            if case % 2:
                rows.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))))
            else:
                rows.append(",".join(rng.choice(["v", "", '"a\nb"', '"a,""b"""', "中文", '"x"', '"a' + nl + 'b"'])
                                     for _ in range(ncols)))
        data = (nl.join(rows) + (nl if rng.random() < 0.8 else "")).encode()
        if case % 7 == 0:
            data = b"\xef\xbb\xbf" + data
        gz = case % 5 == 0
        path = _write(tmp_path / ("in.csv.gz" if gz else "in.csv"), data, gz)
        fast = _fast(con, path, tmp_path / "work")
        if fast is None:
            continue
        taken += 1
        assert fast == _slow(con, path, tmp_path / "work"), data
    assert taken > 60  # the well-formed half is mostly taken


def test_duckdb_refuses_exactly_the_bytes_that_python_does_not_decode_as_utf8(con, tmp_path):
    """The direct read leaves the UTF-8 check of the records to DuckDB."""
    cases = [bytes([a, b]) for a in range(0x80, 0x100) for b in range(0x80, 0xC0)]
    rng = random.Random(3)
    lead = [0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8]
    cases += [bytes([rng.choice(lead)] + [rng.randrange(0x70, 0xC8) for _ in range(rng.randint(1, 4))])
              for _ in range(20_000)]
    body = b"".join(b"%d,x%sy\n" % (i, c) for i, c in enumerate(cases))
    path = _write(tmp_path / "u.csv", b"id,v\n" + body)
    con.execute(f"create temp table u as select * from {read_csv_sql(path, ['id', 'v'])}")
    accepted = {int(r[0]) for r in con.execute("select id from u").fetchall()}

    def python_decodes(data: bytes) -> bool:
        try:
            data.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    assert accepted == {i for i, c in enumerate(cases) if python_decodes(c)}


# --- whole deliveries: loaded with and without the direct read, the warehouse is the same ---

def _warehouse(settings):
    tables = [r[0] for r in query(settings, "select table_name from information_schema.tables "
                                            "where table_schema = 'raw' order by 1")]
    raw = {t: query(settings, f"select * exclude (_loaded_at, _run_id) from raw.{t} order by all") for t in tables}
    dq = {
        "quarantine": query(settings, "select * exclude (run_id) from dq.quarantine order by all"),
        "reconciliation": query(settings, "select * exclude (run_id) from dq.dq_reconciliation order by all"),
        "duplicates": query(settings, "select * exclude (run_id) from dq.duplicate_row order by all"),
        "drift": query(settings, "select * exclude (run_id) from dq.schema_drift order by all"),
        "files": query(settings, "select * exclude (run_id, loaded_at) from dq.ingest_file order by all"),
    }
    return raw, dq


def _load_both_ways(settings, tmp_path, monkeypatch, name):
    monkeypatch.setenv(DIRECT_ENV, "0")
    slow = settings.__class__(**{**settings.__dict__, "warehouse": tmp_path / f"{name}-slow.duckdb"})
    load_all(slow)
    monkeypatch.delenv(DIRECT_ENV)
    prepared = []
    real_prepare = files.prepare
    monkeypatch.setattr("idds.ingest.load.prepare", lambda *a: prepared.append(a[0].name) or real_prepare(*a))
    load_all(settings)
    return _warehouse(slow), _warehouse(settings), prepared


def test_a_delivery_of_tricky_files_loads_the_same_with_and_without_the_direct_read(settings, tmp_path, monkeypatch):
    folder = settings.landing / "2024-01-01"
    patients = (
        "patient_id,name,sex,birth_date,insurance_type\n"
        '0000000001,"Zhang\nSan",男,1960/3/5,自费\n'
        "0000000002,Li,F,19600305,employee\n"
        "0000000002,Li,F,19600305,employee\n"
        "0000000003,王五,Q,not-a-date,employee\n"
        '0000000006,"甲\n\n乙",M,1950-01-01,other\n'
        "0000000006,乙,M,1950-01-01,other\n"
    )
    _write(folder / "patients.csv.gz", b"\xef\xbb\xbf" + patients.replace("\n", "\r\n").encode(), gz=True)
    _write(folder / "admissions.csv", b"admission_id,patient_id,admit_time\nA1,0000000001,2022-01-01 08:00\n"
                                      b"A2,0000000002,2022-01-02 08:00")  # no final newline
    _write(folder / "followups.csv", b"followup_id,patient_id,outcome\nF1,1,reached\n")  # column missing
    _write(folder / "diagnoses.csv", b"diagnosis_id,patient_id,icd10_code\nD1,1,C18\n\nD2,2,C19\n")  # blank
    # neither UTF-8 nor GB18030: its delivery (the last one) is refused, with the same message
    _write(settings.landing / "2024-03-01" / "measurements.csv.gz",
           b"measurement_id,patient_id\n" + b"M1,1\n" * 5000 + b"M2,\x80\xff\n", gz=True)
    _write(folder / "procedures.csv.gz", "procedure_id,patient_id\nP1,甲\n".encode("gb18030"), gz=True)
    resent = settings.landing / "2024-02-01" / "患者信息.csv.gz"  # counted, not loaded again
    resent.parent.mkdir(parents=True)
    resent.write_bytes((folder / "patients.csv.gz").read_bytes())
    before, after, prepared = _load_both_ways(settings, tmp_path, monkeypatch, "tricky")
    assert after == before
    # a .gz is decompressed once, by the scan; a refused one is read again for the message
    assert sorted(prepared) == ["2024-01-01__procedures.csv", "2024-03-01__measurements.csv", "diagnoses.csv",
                                "followups.csv", "measurements.csv.gz"]
    assert ("resent", 6) in query(settings, "select status, rows_read from dq.dq_reconciliation")
    [(status, message)] = query(settings, "select status, message from dq.dq_delivery "
                                          "where delivery_id = '2024-03-01'")
    assert status == "refused" and message.startswith(
        "delivery 2024-03-01: measurements.csv.gz is neither UTF-8 (not valid at byte 25029 (line 5002)) "
        "nor GB18030")
    assert query(settings, "select count(*) from dq.ingest_file where delivery_id = '2024-03-01'") == [(0,)]
    lines = dict(query(settings, "select patient_id, _line_number from raw.patients"))
    assert lines == {"0000000001": 2, "0000000002": 4}


@pytest.fixture(scope="module")
def dirty_extract(tmp_path_factory):
    from synth import generate

    out = tmp_path_factory.mktemp("dirty-fast")
    generate(out, seed=11, profile="paper", dirty=True, deliveries=2)
    return out


def test_the_dirty_extract_loads_the_same_with_and_without_the_direct_read(dirty_extract, settings, tmp_path,
                                                                            monkeypatch):
    settings = settings.__class__(**{**settings.__dict__, "landing": dirty_extract / "landing"})
    before, after, prepared = _load_both_ways(settings, tmp_path, monkeypatch, "dirty")
    assert after[1] == before[1]
    assert after[0] == before[0]
    delivered = list((dirty_extract / "landing").rglob("*.csv*"))
    assert len(prepared) < len(delivered) / 2  # most files are read directly
