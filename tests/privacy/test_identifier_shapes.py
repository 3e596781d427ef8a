"""Identifiers never leave the warehouse, whatever the delivered file looks like.

The masking shown outside the warehouse (analyst file, reports, ``idds quarantine``) does
not trust the header: a header-less file, a second name column, an unmapped ID or
emergency-contact column, a phone typed into ``sex``, a relative's name and phone at the
start of a note. Unit tests of the identifier-shape macro (``idds_mask_identifiers``, the
patterns in expectations/mapping.yml) and of the masked views; then one pipeline run over
hostile deliveries written by hand, whose every identifier is searched for in the analyst
file, the reports, the work folder and ``idds quarantine``.
"""

from __future__ import annotations

import gzip
import io
import json
import stat
from pathlib import Path

import duckdb
import pytest

from idds.warehouse import IDENTIFIER_MASK, install_functions

MASK = IDENTIFIER_MASK


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    install_functions(c, "a-test-key-of-enough-length")
    yield c
    c.close()


def one(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()[0][0]


# ------------------------------------------------------------------------------------------
# the macro
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # resident ID cards (18: masked whatever the check digit; 15: the first generation)
    ("110108196610089532", MASK),
    ("11010819730718427X", MASK),
    ("11010819730718427x", MASK),
    ("110108196610089531", MASK),  # a wrong check digit: still someone's ID with a typo
    ("身份证11010819730718427X。", f"身份证{MASK}。"),
    ("110108661008953", MASK),
    # mobiles: bare, spaced, dashed, +86 / 86, full-width, inside text, touching each other
    ("13812345678", MASK),
    ("138 1234 5678", MASK),
    ("138-1234-5678", MASK),
    ("+86 138-1234-5678", MASK),
    ("+8613812345678", MASK),
    ("8613812345678", MASK),
    ("１３８１２３４５６７８", MASK),
    ("女儿13812345678", f"女儿{MASK}"),
    ("YZ13812345678", f"YZ{MASK}"),  # letters do not shield a phone
    ("13812345678,13912345678,13712345678", f"{MASK},{MASK},{MASK}"),
    ("tel 13812345678; 13912345678", f"tel {MASK}; {MASK}"),
    # landlines with an area code
    ("010-12345678", MASK),
    ("0571-87654321", MASK),
    ("(0571)87654321", MASK),
    ("0571 8765 4321", MASK),
    # this hospital's MRN (10 digits, zero-padded), alone or in text
    ("0028679637", MASK),
    ("病案号0028679637", f"病案号{MASK}"),
    ("patient 0028679637.", f"patient {MASK}."),
])
def test_identifier_shapes_are_masked(con, text, expected):
    assert one(con, "select idds_mask_identifiers(?)", text) == expected


@pytest.mark.parametrize("text", [
    "20210305", "2021-03-05", "2021/3/5", "2021年3月5日", "2021-03-05 14:22:00", "20210305 10:35:00",
    "2021/2/1T11:30:00", "20201127T18:30:00", "202103051422",
    "152448.40", "152,448.40", "11,831.35", "1973.10", "64.5", "0.25mg", "75", "1200000",
    "YZ00000123", "YZ0000000001", "PG0000000001", "ZY21001875", "HD00000010000001", "SF00000001",
    "C34.900x001", "C18.700", "C34.9", "86.0600", "03.9000",
    "SynchroMed II 8637-20", "L3-L4", "T12/L1", "口服吗啡当量<100mg/日", "ADL评分",
    "Q", "男", "employee", "肿瘤内科", "约15万", "not-a-date", "2022-02-30 08:00", "",
])
def test_ordinary_values_survive(con, text):
    assert one(con, "select idds_mask_identifiers(?)", text) == text


def test_null_stays_null(con):
    assert one(con, "select idds_mask_identifiers(null::varchar)") is None


def test_the_patterns_are_data_in_the_mapping_file():
    from idds.mapping import load_mapping
    from idds.warehouse import functions_sql

    patterns = {p["name"]: p for p in load_mapping().identifier_patterns}
    assert {"id_card", "id_card_15", "mobile", "landline", "mrn"} <= set(patterns)
    assert patterns["mrn"]["regex"] in functions_sql()  # rendered into the macro


def test_another_hospitals_mrn_pattern_is_a_mapping_change(con):
    from idds.warehouse import identifier_rules

    rules = identifier_rules([{"name": "mrn", "boundary": "alnum", "regex": "MR[0-9]{6}"}])
    sql = f"select regexp_replace(?, {rules[0]['regex']}, {rules[0]['replacement']}, 'g')"
    assert one(con, sql, "seen MR123456 today") == f"seen {MASK} today"
    assert one(con, sql, "XMR123456") == "XMR123456"
    with pytest.raises(ValueError, match="non-capturing"):
        identifier_rules([{"name": "bad", "regex": "([0-9]{6})"}])


@pytest.mark.parametrize("header, shown", [
    ("备用字段", "备用字段"),
    ("身份证号码", "身份证号码"),
    ("nrs2", "nrs2"),
    ("0028679637", MASK),
    ("13812345678", MASK),
    ("电话13812345678", f"电话{MASK}"),
    ("1960-01-01", "(header withheld: mostly digits)"),
    ("20210305", "(header withheld: mostly digits)"),
    ("x" * 41, "(header withheld: 41 characters)"),
])
def test_delivered_headers_are_masked_or_withheld(con, header, shown):
    assert one(con, "select idds_mask_header(?)", header) == shown


def test_quoted_values_in_reasons_are_withheld(con):
    raw = json.dumps({"patient_id": "0000000009", "sex": "13812345678", "birth_date": "x') 张三"},
                     ensure_ascii=False)
    reasons = ("d/patients.csv line 5: field sex ('13812345678') is not an accepted sex code or label; "
               "field birth_date ('x') 张三') is not a date in any contract form.")
    masked = one(con, "select idds_mask_reasons(?, ?, ?)", reasons, raw,
                 ["raw.patients.sex.accepted", "raw.patients.birth_date.date"])
    assert masked == ("d/patients.csv line 5: field sex ('(value withheld)') is not an accepted sex code or label; "
                      "field birth_date ('(value withheld)') is not a date in any contract form.")
    # a reason whose values are not in a JSON record: any quoted text, then the shapes
    masked = one(con, "select idds_mask_reasons(?, ?, ?)",
                 "line 3: field sex ('张三') x; not json 13812345678", "a,b", ["c1"])
    assert masked == f"line 3: field sex ('(value withheld)') x; not json {MASK}"


# ------------------------------------------------------------------------------------------
# the masked views, on rows written as the loader writes them
# ------------------------------------------------------------------------------------------

def _quarantine_con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    from idds.dq import ensure_dq_schema

    c = duckdb.connect()
    install_functions(c, "a-test-key-of-enough-length")
    for schema in ("raw", "dq", "marts"):
        c.execute(f"create schema {schema}")
    ensure_dq_schema(c)
    for stem, line, key, pid, raw, check_ids, reasons in rows:
        c.execute("insert into dq.quarantine values ('r1', 'd1', ?, ?, ?, ?, ?, ?, ?, ?)",
                  [f"{stem}.csv", stem, line, key, pid,
                   raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, separators=(",", ":")),
                   check_ids, reasons])
    return c


NOTE = "女儿李秋菊13766665555反映夜间疼痛控制不佳，要求尽快调整泵剂量"
HOSTILE_ROWS = [
    ("patients", 2, None, "0090000001", {
        "patient_id": "0090000001", "name": "欧阳娜娜", "id_number": "110101199003071234",
        "phone": "13912340001", "sex": "Q", "birth_date": "1990-03-07", "insurance_type": "自费",
        "name_dup": "欧阳小娜", "name_dup_dup": "欧阳大娜", "extra_身份证号码": "11010119900307123X",
        "extra_紧急联系人": "王秀兰 13812345670"},
     ["raw.patients.sex.accepted"],
     "d1/patients.csv line 2: field sex ('Q') is not an accepted sex code or label."),
    ("patients", 3, None, "0090000002", {
        "patient_id": "0090000002", "name": "司马相如", "sex": "15011112222", "birth_date": "1985-12-12"},
     ["raw.patients.sex.accepted"],
     "d1/patients.csv line 3: field sex ('15011112222') is not an accepted sex code or label."),
    ("followups", 2, "13755556666", "0090000001", {
        "followup_id": "13755556666", "patient_id": "0090000001", "contact_date": "2021-13-45",
        "dissatisfaction_reason": NOTE, "nrs": "3"},
     ["raw.followups.contact_date.date"],
     "d1/followups.csv line 2: field contact_date ('2021-13-45') is not a date in any contract form."),
]
HOSTILE_IDENTIFIERS = ["0090000001", "0090000002", "欧阳娜娜", "欧阳小娜", "欧阳大娜", "110101199003071234",
                       "11010119900307123X", "13912340001", "王秀兰", "13812345670", "司马相如", "15011112222",
                       "李秋菊", "13766665555", "13755556666"]


def test_copies_of_identifier_columns_unknown_columns_and_notes_are_withheld():
    from idds.publish import masked_quarantine_sql

    c = _quarantine_con(HOSTILE_ROWS)
    rows = c.execute(f"select file_stem, line_number, record_key, raw_row, reasons from ({masked_quarantine_sql()}) "
                     "order by file_stem desc, line_number").fetchall()
    shown = repr(rows)
    for identifier in HOSTILE_IDENTIFIERS:
        assert identifier not in shown, identifier
    first, second, followup = (json.loads(r[3]) for r in rows)
    assert first["name"] == first["name_dup"] == first["name_dup_dup"] == first["patient_id"] == "***"
    assert first["extra_身份证号码"] == first["extra_紧急联系人"] == "(unmapped column withheld)"
    assert first["sex"] == "Q" and first["birth_date"] == "1990-03-07" and first["insurance_type"] == "自费"
    assert second["sex"] == MASK
    assert followup["dissatisfaction_reason"] == f"(free text withheld: {len(NOTE)} characters)"
    assert followup["contact_date"] == "2021-13-45" and followup["nrs"] == "3"
    assert rows[2][2] == MASK  # a record key of an identifier's shape
    # the steward still reads which field failed, and why
    assert rows[0][4] == "d1/patients.csv line 2: field sex ('(value withheld)') is not an accepted sex code or label."
    assert rows[2][4].endswith("field contact_date ('(value withheld)') is not a date in any contract form.")


def test_an_unknown_column_whose_name_is_an_identifier_is_renamed():
    from idds.publish import masked_quarantine_sql

    c = _quarantine_con([("patients", 2, None, "0090000001",
                          {"patient_id": "0090000001", "sex": "Q", "extra_13812345678": "x", "extra_备注": "y"},
                          ["raw.patients.sex.accepted"], "why")])
    raw = c.execute(f"select raw_row from ({masked_quarantine_sql()})").fetchall()[0][0]
    assert "13812345678" not in raw
    assert json.loads(raw) == {"patient_id": "***", "sex": "Q", "extra_(withheld 3)": "(unmapped column withheld)",
                               "extra_备注": "(unmapped column withheld)"}


def test_a_header_line_that_is_a_record_is_withheld_whole():
    from idds.publish import masked_drift_sql

    c = _quarantine_con([])
    record = ["0090000011", "慕容复", "330106198001011234", "13611112222", "男", "1980-01-01", "自费"]
    for header in record:
        c.execute("insert into dq.schema_drift values ('r1', 'd2', 'patients.csv', 'patients', ?, ?)",
                  [header, f"extra_{header}"])
    c.execute("insert into dq.schema_drift values ('r1', 'd1', 'patients.csv', 'patients', '身份证号码', "
              "'extra_身份证号码')")
    rows = c.execute(f"select delivery_id, delivered_header, kept_as from ({masked_drift_sql()}) "
                     "order by delivery_id").fetchall()
    assert rows[0] == ("d1", "身份证号码", "extra_身份证号码")
    assert {r[1:] for r in rows[1:]} == {("(header withheld: the header line looks like a record)", "(withheld)")}
    assert not any(v in repr(rows) for v in record)


def test_the_guard_withholds_a_name_the_warehouse_knows_in_any_field():
    """A patient's own name typed into ``sex`` has no shape: the guard knows it from the
    quarantined record's name field (and from raw.patients)."""
    from idds.publish import published_drift_sql, published_quarantine_sql

    c = _quarantine_con([("patients", 4, None, "0090000003", {
        "patient_id": "0090000003", "name": "上官婉儿", "sex": "上官婉儿", "birth_date": "1970-01-01"},
        ["raw.patients.sex.accepted"],
        "d1/patients.csv line 4: field sex ('上官婉儿') is not an accepted sex code or label.")])
    c.execute("create table raw.patients (patient_id varchar, name varchar, id_number varchar, phone varchar)")
    c.execute("insert into raw.patients values ('0090000004', '诸葛孔明', '510104196808080011', '13912340004')")
    c.execute("insert into dq.schema_drift values ('r1', 'd1', 'patients.csv', 'patients', '诸葛孔明', "
              "'extra_诸葛孔明')")
    raw, reasons = c.execute(f"select raw_row, reasons from ({published_quarantine_sql(c)})").fetchall()[0]
    assert "上官婉儿" not in raw + reasons and json.loads(raw)["sex"] == MASK
    assert "field sex ('(value withheld)')" in reasons
    drift = c.execute(f"select delivered_header, kept_as from ({published_drift_sql(c)})").fetchall()
    assert "诸葛孔明" not in repr(drift)


# ------------------------------------------------------------------------------------------
# working copies: owner-only
# ------------------------------------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_is_owner_only_and_tightens_an_existing_folder(tmp_path):
    from idds.settings import private_dir

    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert _mode(private_dir(loose)) == 0o700
    assert _mode(private_dir(tmp_path / "a" / "b")) == 0o700


GB_RECORD = "0090000021,东方不败,330106198001015678,13611114444,男,1980-01-01,自费\n"


def _snapshot_at_mid_file(monkeypatch, seen: dict):
    import idds.ingest.load as load

    real = load.fault_point

    def snapshot(name: str) -> None:
        if name == "mid-file":
            root = seen["root"]
            seen.setdefault("files", {}).update({p: _mode(p) for p in root.rglob("*")})
        real(name)

    monkeypatch.setattr(load, "fault_point", snapshot)


def _gbk_delivery(settings) -> None:
    folder = settings.landing / "2024-05-01"
    folder.mkdir(parents=True)
    # GB18030 and gzip: both are decoded to a working copy before DuckDB reads them
    (folder / "patients.csv").write_bytes(
        ("patient_id,name,id_number,phone,sex,birth_date,insurance_type\n" + GB_RECORD).encode("gb18030"))
    (folder / "followups.csv.gz").write_bytes(gzip.compress(
        "followup_id,patient_id,contact_date,outcome\nSF1,0090000021,2021-03-05,已联系\n".encode()))


def test_working_copies_of_a_load_are_owner_only(settings, monkeypatch):
    """What a run killed mid-load would leave, looked at in that moment (the loader
    creates its copies owner-only, whatever the process's umask)."""
    from idds.dq import ensure_dq_schema
    from idds.ingest.files import discover
    from idds.ingest.load import ensure_raw_tables, load_delivery
    from idds.mapping import load_mapping
    from idds.warehouse import connect

    _gbk_delivery(settings)
    work = settings.work / "ingest" / "r1"
    seen = {"root": settings.work}
    _snapshot_at_mid_file(monkeypatch, seen)
    mapping = load_mapping()
    with connect(settings.warehouse, "test-key-not-for-production-0001") as c:
        ensure_dq_schema(c)
        ensure_raw_tables(c, mapping)
        for delivery in discover(settings.landing, mapping):
            load_delivery(c, "r1", delivery, mapping, work)
    assert any(p.suffix == ".csv" for p in seen.get("files", {})), "no working copy was seen mid-load"
    loose = {str(p): oct(m) for p, m in seen["files"].items() if m & 0o077}
    assert loose == {}


def test_the_ingest_task_makes_its_working_copies_owner_only(settings, monkeypatch):
    from flows.ingest import load_delivery_task

    _gbk_delivery(settings)
    seen = {"root": settings.work}
    _snapshot_at_mid_file(monkeypatch, seen)
    from idds.dq import ensure_dq_schema
    from idds.ingest.load import ensure_raw_tables
    from idds.mapping import load_mapping
    from idds.warehouse import connect

    with connect(settings.warehouse, "test-key-not-for-production-0001") as c:
        ensure_dq_schema(c)
        ensure_raw_tables(c, load_mapping())
    monkeypatch.setenv("IDDS_PSEUDONYM_KEY", "test-key-not-for-production-0001")
    load_delivery_task.fn(settings, "r1", "2024-05-01")
    assert any(p.suffix == ".csv" for p in seen.get("files", {})), "no working copy was seen mid-load"
    loose = {str(p): oct(m) for p, m in seen["files"].items() if m & 0o077}
    assert loose == {}


# ------------------------------------------------------------------------------------------
# one pipeline run over hostile deliveries written by hand
# ------------------------------------------------------------------------------------------

# 2024-04-01: a second 姓名 column (name_dup), an unmapped ID column (身份证号码) and an
# emergency contact (紧急联系人) on a row quarantined for its sex; a phone typed into sex;
# a patient's own name typed into sex; a row that loads (its copies stay in the warehouse).
HOSTILE_PATIENTS = (
    "病案号,姓名,身份证号,联系电话,性别,出生日期,医保类型,姓名,身份证号码,紧急联系人\n"
    "0090000001,欧阳娜娜,110101199003071234,13912340001,Q,1990-03-07,自费,欧阳小娜,11010119900307123X,"
    "王秀兰 13812345670\n"
    "0090000002,司马相如,320102198512120019,13912340002,15011112222,1985-12-12,自费,司马长卿,,\n"
    "0090000003,上官婉儿,440103197001010026,139-1234-0003,上官婉儿,1970-01-01,其他,,,\n"
    "0090000004,诸葛亮明,510104196808080011,13912340004,男,1968-08-08,自费,诸葛孔明,510104196808080011,"
    "黄月英 0571-87654321\n"
)
# a note beginning with a relative's name and phone, on a row quarantined for its date; a
# phone as the record key, on a row quarantined for its pain score
HOSTILE_FOLLOWUPS = (
    "随访编号,病案号,随访日期,随访结果,应答人,生存状态,死亡日期,疼痛评分,是否满意,不满意原因,全身阿片用药\n"
    f"SF80000001,0090000001,2021-13-45,已联系,家属,存活,,3,不满意,\"{NOTE}\",\n"
    "13755556666,0090000002,2021-03-05,已联系,本人,存活,,12,满意,,\n"
)
# 2024-04-02: a patients file without its header line (its first record is read as the
# header; its own delivery, so that refusing it refuses nothing else)
HEADERLESS_PATIENTS = (
    "0090000011,慕容复,330106198001011234,13611112222,男,1980-01-01,自费\n"
    "0090000012,段誉,530102198202021111,13611113333,男,1982-02-02,自费\n"
)
DELIVERED = {
    "names": {"欧阳娜娜", "欧阳小娜", "王秀兰", "司马相如", "司马长卿", "上官婉儿", "诸葛亮明", "诸葛孔明",
              "黄月英", "李秋菊", "慕容复", "段誉"},
    "id_numbers": {"110101199003071234", "11010119900307123X", "320102198512120019", "440103197001010026",
                   "510104196808080011", "330106198001011234", "530102198202021111"},
    "phones": {"13912340001", "13812345670", "13912340002", "15011112222", "13912340004", "13766665555",
               "13755556666", "13611112222", "13611113333", "87654321"},
    "mrns": {"0090000001", "0090000002", "0090000003", "0090000004", "0090000011", "0090000012"},
}


# the steward accepts the two failures these deliveries cause, so that the run publishes
WAIVERS = """
- check_id: raw.patients.patient_id.column_missing
  reason: a patients file delivered without its header line; resend requested
  owner: data steward
  expires: 2999-12-31
- check_id: raw.patients.sex.accepted
  reason: sex mis-keyed in a small resend; correction requested
  owner: data steward
  expires: 2999-12-31
"""


def _write_hostile_deliveries(landing: Path) -> None:
    first = landing / "2024-04-01"
    first.mkdir(parents=True)
    (first / "patients.csv").write_text(HOSTILE_PATIENTS, encoding="utf-8")
    (first / "followups.csv").write_text(HOSTILE_FOLLOWUPS, encoding="utf-8")
    # the header-less file (HEADERLESS_PATIENTS) refuses its delivery and blocks the run:
    # tests/flows/test_hostile_deliveries.py runs it on its own, with a leak scan


@pytest.fixture(scope="module")
def hostile(prefect_harness, paper_extract, tmp_path_factory):
    """The paper extract plus the hostile deliveries, run once by `idds run` (output
    captured), then `idds quarantine` masked and unmasked."""
    from pipeline_helpers import run_cli, settings_with_landing
    from test_leak import KEY, Identifiers, Needles, capture_process_output, collect_identifiers

    from idds.report.quarantine import print_quarantine

    root = tmp_path_factory.mktemp("hostile")
    settings = settings_with_landing(root, paper_extract / "landing")
    _write_hostile_deliveries(settings.landing)
    needles = Needles(Identifiers(**{k: set(v) for k, v in DELIVERED.items()}))
    # the leak test's reader finds them too: both names of a doubled 姓名, an ID in an
    # unmapped column, a phone typed into sex (all but the header-less file's first record)
    collected = collect_identifiers(settings.landing / "2024-04-01")
    assert {"欧阳小娜", "司马长卿"} <= collected.names <= DELIVERED["names"]
    assert "11010119900307123X" in collected.id_numbers <= DELIVERED["id_numbers"]
    assert "15011112222" in collected.phones and collected.mrns <= DELIVERED["mrns"]
    assert {kind for kind, _ in needles.find(HOSTILE_PATIENTS + HOSTILE_FOLLOWUPS + HEADERLESS_PATIENTS)} \
        == {"name", "id_number", "phone", "mrn"}
    (root / "waivers.yml").write_text(WAIVERS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("IDDS_WORK", raising=False)
        mp.setenv("IDDS_WAIVERS", str(root / "waivers.yml"))
        with capture_process_output() as captured:
            code = run_cli(settings)
    views = {}
    for name, unmasked in (("masked", False), ("unmasked", True)):  # what `idds quarantine` prints
        out = io.StringIO()
        assert print_quarantine(settings.warehouse, KEY, None, unmasked, 100_000, out=out) == 0
        views[name] = out.getvalue()
    return {"settings": settings, "code": code, "output": captured["output"] + captured["log"],
            "needles": needles, "views": views}


def _published(hostile, sql: str) -> list[tuple]:
    c = duckdb.connect(str(hostile["settings"].publish), read_only=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


@pytest.mark.slow
def test_the_hostile_run_published_and_kept_the_identifiers_in_the_warehouse(hostile):
    """Positive control: the run published, and the same search finds every kind of
    identifier in the warehouse (the protected zone) and in the unmasked view."""
    from test_leak import search_duckdb

    assert hostile["code"] == 0, hostile["output"][-3000:]
    needles = hostile["needles"]
    found = search_duckdb(needles, hostile["settings"].warehouse)
    kinds = {kind for hits in found.values() for kind, _ in hits}
    assert {"name", "id_number", "phone", "mrn"} <= kinds, found
    assert any(where.startswith("dq.quarantine") for where in found)
    assert {kind for kind, _ in needles.find(hostile["views"]["unmasked"])} >= {"name", "id_number", "phone", "mrn"}


@pytest.mark.slow
def test_the_analyst_file_holds_no_delivered_identifier(hostile):
    from test_leak import search_duckdb

    assert search_duckdb(hostile["needles"], hostile["settings"].publish) == {}


@pytest.mark.slow
def test_the_reports_hold_no_delivered_identifier(hostile):
    from test_leak import files_under, search_files

    files = list(files_under(hostile["settings"].reports))
    assert any(p.name == "validation.html" for p in files) and any(p.name == "study.html" for p in files)
    assert search_files(hostile["needles"], files) == {}


@pytest.mark.slow
def test_the_work_folder_logs_and_output_hold_no_delivered_identifier(hostile):
    from test_leak import files_under, search_files

    work = hostile["settings"].work
    assert (work / "dbt-target").is_dir(), "the run's work folder is elsewhere"
    assert _mode(work) == 0o700
    assert search_files(hostile["needles"], files_under(work)) == {}
    assert hostile["needles"].find(hostile["output"]) == []


@pytest.mark.slow
def test_the_masked_quarantine_view_holds_no_delivered_identifier(hostile):
    masked = hostile["views"]["masked"]
    assert hostile["needles"].find(masked) == []
    assert "field sex ('(value withheld)') is not an accepted sex code or label" in masked


@pytest.mark.slow
def test_the_steward_still_reads_which_field_failed_and_why(hostile):
    rows = _published(hostile, "select file_stem, line_number, record_key, raw_row, reasons, check_ids "
                               "from dq.quarantine where delivery_id = '2024-04-01' order by file_stem desc, line_number")
    patients = {r[1]: r for r in rows if r[0] == "patients"}
    followups = {r[1]: r for r in rows if r[0] == "followups"}
    assert set(patients) == {2, 3, 4} and set(followups) == {2, 3}
    first = json.loads(patients[2][3])
    assert first["name"] == first["name_dup"] == first["id_number"] == first["phone"] == "***"
    assert first["extra_身份证号码"] == first["extra_紧急联系人"] == "(unmapped column withheld)"
    assert first["sex"] == "Q" and first["birth_date"] == "1990-03-07"
    assert json.loads(patients[3][3])["sex"] == MASK
    assert json.loads(patients[4][3])["sex"] == MASK  # the patient's own name
    for line in (2, 3, 4):
        assert patients[line][5] == ["raw.patients.sex.accepted"]
        assert patients[line][4] == (f"2024-04-01/patients.csv line {line}: field sex ('(value withheld)') "
                                     "is not an accepted sex code or label.")
    note = json.loads(followups[2][3])
    assert note["dissatisfaction_reason"] == f"(free text withheld: {len(NOTE)} characters)"
    assert note["contact_date"] == "2021-13-45" and followups[2][2] == "SF80000001"
    assert "field contact_date ('(value withheld)') is not a date in any contract form" in followups[2][4]
    assert followups[3][2] == MASK and "field nrs ('(value withheld)') is outside the range 0 to 10" in followups[3][4]


@pytest.mark.slow
def test_schema_drift_keeps_plausible_headers_and_withholds_a_record_read_as_a_header(hostile):
    import html

    drift = _published(hostile, "select delivery_id, delivered_header, kept_as from dq.schema_drift "
                                "where delivery_id in ('2024-04-01', '2024-04-02') order by all")
    assert ("2024-04-01", "身份证号码", "extra_身份证号码") in drift
    assert ("2024-04-01", "紧急联系人", "extra_紧急联系人") in drift
    # a file without its header line: refused (no drift recorded), or its header withheld
    assert {r[1:] for r in drift if r[0] == "2024-04-02"} <= {
        ("(header withheld: the header line looks like a record)", "(withheld)")}
    report = html.unescape((hostile["settings"].reports / "latest" / "validation.html").read_text(encoding="utf-8"))
    assert "身份证号码" in report and "field sex ('(value withheld)')" in report
    assert "(free text withheld: " in report
