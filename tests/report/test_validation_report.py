"""The steward's validation report, on a warehouse filled by real ingestion of a dirty extract.

The fixture ingests the generator's dirty extract (so the quarantine holds real raw rows
with real identifiers), then adds catalogue rows, check results for three runs, failing
rows and waivers, so that every section has something to show: new, resolved, persisting
and regressed failures; active, expiring and expired waivers; a tiny share of a huge
table; checks without a catalogue row. The browser tests open the file in headless
Chromium and read the DOM after the report's own script has filtered it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import shutil
import struct
import subprocess
from collections import Counter
from datetime import date, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pipeline_helpers import CHROMIUM, chromium

from idds.dq import ensure_dq_schema
from idds.ingest.files import discover
from idds.ingest.load import ensure_raw_tables, is_new, load_delivery
from idds.mapping import load_mapping
from idds.report.validation import build_validation_report
from idds.warehouse import connect

KEY = "test-key-not-for-production-0001"

OLD, PREV, CUR = "20240307T020000-old001", "20240314T020000-prev01", "20240321T020000-cur001"
CUR_DAY = date(2024, 3, 21)
FAILED_ROW = ("insert into dq.dq_failed_row (run_id, check_id, table_name, patient_key, record_key, "
              "offending_value) values (?, ?, ?, ?, ?, ?)")
SECTIONS = ("provenance", "verdict", "reconciliation", "kahn", "changes", "results", "drilldown",
            "waivers", "impact")

# (check_id, engine, kahn category, subcategory, severity) of the catalogue rows we add
CATALOGUE = [
    ("R-DT-01", "dbt", "plausibility", "temporal", "blocking", "Death date is on or after the implant date."),
    ("R-DT-02", "dbt", "plausibility", "temporal", "blocking", "Follow-up contact is not after the data cut-off."),
    ("gx.cohort_idds.age_years.range", "gx", "plausibility", "atemporal", "blocking", "Age at implant is 18 to 100."),
    ("gx.cohort_idds.os_days.min", "gx", "plausibility", "temporal", "blocking", "Survival time is not negative."),
    ("R-CP-01", "dbt", "completeness", None, "warning", "Every cohort patient has a baseline NRS."),
    ("R-CP-02", "dbt", "completeness", None, "warning", "Every cohort patient has a pump program."),
    ("R-CP-03", "dbt", "conformance", "relational", "warning", "Every pump program belongs to an implant."),
    ("pipeline.measurements.huge", "pipeline", "conformance", "value", "info",
     "Measurement units are among the accepted units."),
    ("dbt.accepted_values_route", "dbt", "conformance", "value", "warning", "Routes are accepted codes."),
    ("dbt.not_null_patient_key", "dbt", "completeness", None, "blocking", "patient_key is never null."),
]
# (check_id, engine, (old status, rows), (prev status, rows), (cur status, rows, tested))
HISTORY = [
    ("R-DT-01", "dbt", ("pass", 0), ("pass", 0), ("fail", 25, None)),               # new
    ("R-DT-02", "dbt", ("fail", 2), ("fail", 2), ("pass", 0, None)),                # resolved
    ("gx.cohort_idds.age_years.range", "gx", ("fail", 3), ("fail", 3), ("fail", 3, 96)),  # persisting
    ("gx.cohort_idds.os_days.min", "gx", ("pass", 0), ("warn", 2), ("fail", 5, 96)),      # regressed
    ("R-CP-01", "dbt", ("pass", 0), ("waived", 4), ("waived", 4, None)),            # waiver expired: new
    ("R-CP-02", "dbt", ("waived", 1), ("waived", 1), ("waived", 1, None)),           # active waiver
    ("R-CP-03", "dbt", ("warn", 2), ("warn", 2), ("warn", 2, None)),                # expiring waiver; persisting
    ("pipeline.measurements.huge", "pipeline", ("pass", 0), ("pass", 0),
     ("pass_with_violations", 3, 1_204_512)),
    ("dbt.accepted_values_route", "dbt", ("pass", 0), ("pass", 0), ("pass", 0, None)),
    ("dbt.not_null_patient_key", "dbt", ("pass", 0), ("pass", 0), ("not_applicable", None, None)),
    ("dbt.uncatalogued_unique_implant", "dbt", ("pass", 0), ("pass", 0), ("fail", 1, None)),  # new, unclassified
    ("pipeline.marts.survival_km.built", "pipeline", ("pass", 0), ("pass", 0), ("error", 1, 1)),  # new
]


# ---------------------------------------------------------------------------
# the fixture warehouse
# ---------------------------------------------------------------------------

def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _identifiers(extract: Path) -> dict[str, set[str]]:
    """MRNs, names, phone and id numbers of the synthetic patients, from the raw files."""
    found: dict[str, set[str]] = {"patient_id": set(), "name": set(), "phone": set(), "id_number": set()}
    for path in (extract / "landing").rglob("patients.csv*"):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for row in csv.DictReader(io.StringIO(_decode(data))):
            for column, values in found.items():
                value = (row.get(column) or "").strip()
                if len(value) > 1:
                    values.add(value)
    for name in ("latent.csv", "noncohort.csv"):
        with open(extract / "truth" / name, encoding="utf-8") as fh:
            found["patient_id"].update(r["patient_id"] for r in csv.DictReader(fh) if r["patient_id"])
    return found


def _insert_history(con, cur_pandera: list[tuple]) -> dict:
    """Results of three runs; returns the expected changes between PREV and CUR."""
    runs = {OLD: datetime(2024, 3, 7, 2), PREV: datetime(2024, 3, 14, 2), CUR: datetime(2024, 3, 21, 2)}
    for run_id, started in runs.items():
        blocked = run_id == CUR
        con.execute(
            "insert into dq.dq_run (run_id, flow_run_id, started_at, ended_at, status, verdict, message, "
            "code_version, landing, package_versions) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, f"flow-{run_id[-6:]}-7a1e", started, started + timedelta(minutes=4),
             "blocked" if blocked else "succeeded", "blocked" if blocked else "allowed",
             "Blocked by R-DT-01, gx.cohort_idds.age_years.range; the analyst file keeps the last good run."
             if blocked else None, "0.1.0", "/data/landing",
             '{"duckdb": "2.0.1", "dbt-core": "1.11.2", "great-expectations": "1.24.0"}'])
    con.executemany(
        "insert into dq.dq_check (check_id, engine, kahn_category, kahn_subcategory, severity, warn_pct, "
        "fail_pct, warn_count, fail_count, description, rationale, what_to_do) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(cid, eng, cat, sub, sev, 1.0, 5.0, None, 10, desc, "Survival analysis needs it.", "Ask the registry.")
         for cid, eng, cat, sub, sev, desc in CATALOGUE])
    rows = []
    for cid, engine, old, prev, cur in HISTORY:
        rows.append((OLD, cid, engine, old[0], old[1], None))
        rows.append((PREV, cid, engine, prev[0], prev[1], None))
        rows.append((CUR, cid, engine, cur[0], cur[1], cur[2]))
    # the pandera results of CUR come from ingestion; PREV had the same, except three
    failing = sorted(c for c, s, _ in cur_pandera if s == "fail")
    passing = sorted(c for c, s, _ in cur_pandera if s == "pass")
    assert len(failing) >= 3 and passing, "the dirty extract should fail several raw checks"
    became_failing, got_worse, fixed = failing[0], failing[1], passing[0]
    for cid, status, failed in cur_pandera:
        prev_status, prev_failed = status, failed
        if cid == became_failing:
            prev_status, prev_failed = "pass", 0
        elif cid == got_worse:
            prev_status = "warn"
        elif cid == fixed:
            prev_status, prev_failed = "fail", 2
        rows.append((PREV, cid, "pandera", prev_status, prev_failed, 1000))
        rows.append((OLD, cid, "pandera", prev_status, prev_failed, 1000))
    for run_id, cid, engine, status, failed, tested in rows:
        if run_id == CUR and engine == "pandera":
            continue
        con.execute(
            "insert into dq.dq_check_result (run_id, check_id, engine, status, rows_failed, rows_tested, "
            "drilldown_sql, execution_ms, detail) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, cid, engine, status, failed, tested,
             f"select * from marts.cohort_idds where check = '{cid}'" if engine in ("dbt", "gx") else None,
             12.5, f"{engine} result of {cid}"])
    con.execute("update dq.dq_check_result set patients_affected = 3 "
                "where run_id = ? and check_id = 'gx.cohort_idds.age_years.range'", [CUR])
    # failing rows: pseudonymised keys, plus one raw MRN that a buggy engine let through
    mrns = [r[0] for r in con.execute(
        "select distinct patient_id from raw.patients where patient_id is not null order by 1 limit 30").fetchall()]
    failed_rows = [(CUR, "R-DT-01", "marts.cohort_idds", None, f"IMP{i:05d}", f"death {i} days before implant")
                   for i in range(25)]
    con.executemany(FAILED_ROW, failed_rows)
    con.execute("update dq.dq_failed_row set patient_key = idds_patient_key(? || '') "
                "where check_id = 'R-DT-01'", [mrns[0]])
    con.execute(FAILED_ROW, [CUR, "gx.cohort_idds.age_years.range", "marts.cohort_idds", mrns[1], mrns[2], "17"])
    # identifiers hidden inside values: a JSON field, and a name in free text
    name, phone = con.execute("select name, phone from raw.patients where name is not null and phone is not null "
                              "order by patient_id limit 1").fetchall()[0]
    con.execute(FAILED_ROW, [CUR, "gx.cohort_idds.age_years.range", "stg_patients", "pk_x", "K1",
                             f'{{"patient_id": "{mrns[3]}", "age_years": "16"}}'])
    con.execute(FAILED_ROW, [CUR, "gx.cohort_idds.age_years.range", "stg_patients", "pk_y", "K2",
                             f"called {name} on {phone}, age 15"])
    # waivers as of CUR: expired (R-CP-01), active (R-CP-02), expiring (R-CP-03)
    waivers = [
        (PREV, "R-CP-01", None, "baseline NRS arrives late", "steward", date(2024, 1, 1), date(2024, 3, 17), "expiring"),
        (PREV, "R-CP-02", None, "known gap in 2019", "registry lead", date(2024, 1, 1), date(2024, 6, 30), "active"),
        (CUR, "R-CP-01", None, "baseline NRS arrives late", "steward", date(2024, 1, 1), date(2024, 3, 17), "expiring"),
        (CUR, "R-CP-02", None, "known gap in 2019", "registry lead", date(2024, 1, 1), date(2024, 6, 30), "active"),
        (CUR, "R-CP-03", "PP00000012", "old pump, replaced", "pump nurse", date(2024, 2, 1), CUR_DAY + timedelta(days=7), "active"),
    ]
    con.executemany("insert into dq.dq_waiver (run_id, check_id, record_key, reason, owner, created, expires, state) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?)", waivers)
    return {
        "new": {"R-DT-01", "R-CP-01", "dbt.uncatalogued_unique_implant", "pipeline.marts.survival_km.built",
                became_failing},
        "resolved": {"R-DT-02", fixed},
        "regressed": {"gx.cohort_idds.os_days.min", got_worse},
        "persisting": {"gx.cohort_idds.age_years.range", "R-CP-03"} | (set(failing) - {became_failing, got_worse}),
    }


def _create_marts(con) -> None:
    con.execute("""
        create or replace table marts.cohort_attrition as select * from (values
            (0, 'extract', 'every patient in the extract', 387, 0, null),
            (1, 'no_implant', 'has an IDDS implant record', 129, 258, 'no_implant (258)'),
            (2, 'no_first_implant', 'has a first (non-replacement) implant', 120, 9, 'replacement_only (9)'),
            (3, 'implant_outside_window', 'index implant dated 2019-01-01 to 2023-12-31', 104, 16, 'implant_outside_window (16)'),
            (4, 'nonmalignant_pain', 'cancer-pain indication', 98, 6, 'nonmalignant_pain (6)'),
            (5, 'missing_data', 'every required baseline variable present', 96, 2, 'missing_data (2)')
        ) t(step_order, step, rule, n_remaining, n_excluded, reason)
    """)
    con.execute("""
        create or replace table marts.cohort_idds as select * from (values
            ('pk_aaaaaaaaaaaaaaaaaaa1', date '2021-03-01', date '2021-02-01', date '2021-02-01', date '2024-03-20', -28, 1),
            ('pk_aaaaaaaaaaaaaaaaaaa2', date '2021-03-01', null, date '2024-05-01', date '2024-03-20', 1157, 0),
            ('pk_aaaaaaaaaaaaaaaaaaa3', date '2021-03-01', date '2024-04-02', date '2024-04-02', date '2024-03-20', 1128, 1),
            ('pk_aaaaaaaaaaaaaaaaaaa4', date '2021-03-01', date '2022-03-01', date '2022-03-01', date '2024-03-20', 365, 1),
            ('pk_aaaaaaaaaaaaaaaaaaa5', date '2021-03-01', null, date '2024-01-01', date '2024-03-20', 1036, 0)
        ) t(patient_key, implant_date, death_date, last_contact_date, data_cutoff_date, os_days, os_event)
    """)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from synth import generate

    root = tmp_path_factory.mktemp("validation_report")
    extract = root / "extract"
    generate(extract, seed=11, profile="paper", dirty=True)
    # The report needs quarantined rows, not the manifest check: the dirty extract's broken
    # records make the manifest's record counts disagree with what a CSV parser reads.
    for manifest in (extract / "landing").rglob("manifest.json"):
        manifest.unlink()
    warehouse, reports = root / "warehouse.duckdb", root / "reports"
    mapping = load_mapping()
    with connect(warehouse, KEY) as con:
        ensure_dq_schema(con)
        ensure_raw_tables(con, mapping)
        for delivery in discover(extract / "landing", mapping):
            if is_new(con, delivery):
                load_delivery(con, CUR, delivery, mapping, root / "work")
        cur_pandera = con.execute(
            "select check_id, status, rows_failed from dq.dq_check_result where run_id = ? and engine = 'pandera'",
            [CUR]).fetchall()
        n_quarantined = con.execute("select count(*) from dq.quarantine").fetchall()[0][0]
        expected = _insert_history(con, cur_pandera)
        # built before the catalogue existed and without marts (a blocked run)
        con.execute("create temp table saved_catalogue as select * from dq.dq_check")
        con.execute("delete from dq.dq_check")
        bare = build_validation_report(con, CUR, root / "reports_bare")
        con.execute("insert into dq.dq_check select * from saved_catalogue")
        _create_marts(con)
        path = build_validation_report(con, CUR, reports)
        n_results = con.execute("select count(*) from dq.dq_check_result where run_id = ?", [CUR]).fetchall()[0][0]
        files = con.execute("select source_file, sha256 from dq.ingest_file where run_id = ?", [CUR]).fetchall()
    return {
        "root": root, "path": path, "html": path.read_text(encoding="utf-8"),
        "bare": bare.read_text(encoding="utf-8"), "reports": reports, "expected": expected,
        "identifiers": _identifiers(extract), "n_results": n_results, "files": files,
        "n_quarantined": n_quarantined, "warehouse": warehouse,
    }


# ---------------------------------------------------------------------------
# a small DOM reader
# ---------------------------------------------------------------------------

class Dom(HTMLParser):
    """Elements with their attributes and text (enough to read tables and ids)."""

    VOID = {"br", "img", "input", "meta", "link", "hr", "col", "source", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.stack: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": [], "parents": list(self.stack)}
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"].append(data)

    def find(self, tag=None, **attrs) -> list[dict]:
        out = []
        for el in self.elements:
            if tag and el["tag"] != tag:
                continue
            if all((el["attrs"].get(k.replace("_", "-")) == v) if v is not True else
                   (k.replace("_", "-") in el["attrs"]) for k, v in attrs.items()):
                out.append(el)
        return out

    def one(self, tag=None, **attrs) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    @staticmethod
    def text(el) -> str:
        return " ".join("".join(el["text"]).split())

    def result_rows(self) -> list[dict]:
        return [el for el in self.find("tr") if el["attrs"].get("id", "").startswith("r-")]


def _cells(dom: Dom, row: dict) -> list[dict]:
    return [el for el in dom.find("td") if el["parents"] and el["parents"][-1] is row]


def _int(text: str) -> int:
    return int(text.replace(",", "").strip())


# ---------------------------------------------------------------------------
# the static HTML
# ---------------------------------------------------------------------------

def test_every_section_is_present_in_order_and_self_contained(built):
    html = built["html"]
    positions = [html.find(f'<section id="{s}"') for s in SECTIONS]
    assert all(p > 0 for p in positions), dict(zip(SECTIONS, positions, strict=True))
    assert positions == sorted(positions)
    assert (built["reports"] / "latest" / "validation.html").read_text(encoding="utf-8") == html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "no external reference"
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert 'href="../data_docs/index.html"' in html


def test_provenance_names_the_flow_run_files_hashes_and_versions(built):
    dom = Dom(built["html"])
    html = built["html"]
    assert "flow-cur001-7a1e" in html and "great-expectations 1.24.0" in html
    for source_file, sha in built["files"]:
        code = dom.one("code", data_sha256=sha)
        assert code["attrs"]["title"] == sha
        assert Dom.text(code) == sha[:12] + "…"
        assert source_file in html


def test_the_verdict_lists_the_blocking_failures(built):
    dom = Dom(built["html"])
    verdict = dom.one("section", id="verdict")
    assert "Blocked: nothing published" in Dom.text(verdict)
    listed = {el["attrs"]["data-check"] for el in dom.find("tr") if verdict in el["parents"] and "data-check" in el["attrs"]}
    # catalogue severity blocking, plus failing dbt/pipeline checks without a catalogue row
    assert listed == {"R-DT-01", "gx.cohort_idds.age_years.range", "gx.cohort_idds.os_days.min",
                      "dbt.uncatalogued_unique_implant", "pipeline.marts.survival_km.built"}


def test_without_catalogue_every_result_is_unclassified_and_engines_decide(built):
    dom = Dom(built["bare"])
    rows = dom.result_rows()
    assert rows and all(r["attrs"]["data-severity"] == "unclassified" for r in rows)
    verdict = dom.one("section", id="verdict")
    listed = {el["attrs"]["data-check"] for el in dom.find("tr") if verdict in el["parents"] and "data-check" in el["attrs"]}
    assert listed == {"R-DT-01", "gx.cohort_idds.age_years.range", "gx.cohort_idds.os_days.min",
                      "dbt.uncatalogued_unique_implant", "pipeline.marts.survival_km.built", "R-CP-01"}
    assert not any(r["attrs"]["data-engine"] == "pandera" for r in rows if r["attrs"].get("class") == "blocking")
    assert dom.find(data_testid="attrition-missing") and dom.find(data_testid="survival-missing")


def test_no_identifier_of_a_synthetic_patient_reaches_the_report(built):
    html = unescape(built["html"] + built["bare"])
    assert built["n_quarantined"] > 5
    ids = built["identifiers"]
    assert len(ids["patient_id"]) > 300 and len(ids["name"]) > 300 and ids["phone"] and ids["id_number"]
    for kind, values in ids.items():
        leaked = sorted(v for v in values if v in html)
        assert not leaked, f"{kind} in the report: {leaked[:5]}"
    assert html.count("(identifier withheld)") >= 3  # raw MRNs and a name a buggy engine stored
    assert '"patient_id": "***", "age_years": "16"' in html
    assert '"name":"***"' in html  # the quarantined patients row, masked


def test_a_small_share_of_a_huge_table_is_never_shown_as_zero(built):
    dom = Dom(built["html"])
    row = dom.one("tr", data_check="pipeline.measurements.huge")
    text = Dom.text(row)
    assert "3 / 1,204,512" in text and "< 0.01 %" in text
    assert row["attrs"]["data-status"] == "pass_with_violations"
    assert not re.search(r"(?<![\d.])0\.00 %", built["html"]), "a bare 0.00 %"


def test_reconciliation_identity_and_drilldown_links(built):
    dom = Dom(built["html"])
    table = dom.one("table", data_testid="reconciliation")
    files = [el for el in dom.find("tr") if table in el["parents"] and "data-file" in el["attrs"]]
    assert len(files) == len(built["files"])
    totals = {el["attrs"]["data-total"]: _int(Dom.text(el)) for el in dom.find("td") if "data-total" in el["attrs"]}
    assert totals["read"] == totals["loaded"] + totals["quarantined"] + totals["duplicate"]
    assert totals["quarantined"] == built["n_quarantined"]
    ids = {el["attrs"]["id"] for el in dom.elements if "id" in el["attrs"]}
    links = [el["attrs"]["href"] for el in dom.find("a") if table in el["parents"]]
    assert len(links) == 4 * len(files)
    assert all(href.startswith("#rec-") and href[1:] in ids for href in links)


def test_the_sql_in_the_report_returns_the_reported_rows(built):
    dom = Dom(built["html"])
    sql = {el["attrs"]["id"]: Dom.text(el) for el in dom.find("pre") if "id" in el["attrs"]}
    table = dom.one("table", data_testid="reconciliation")
    files = [el for el in dom.find("tr") if table in el["parents"] and "data-file" in el["attrs"]]
    checked = 0
    with connect(built["warehouse"], KEY) as con:
        for i, row in enumerate(files):
            cells = _cells(dom, row)
            for term, column in (("loaded", 4), ("quarantined", 6)):
                got = con.execute(f"select count(*) from ({sql[f'sql-rec-{i}-{term}'].rstrip(';')})").fetchall()[0][0]
                assert got == _int(Dom.text(cells[column])), (row["attrs"]["data-file"], term)
                checked += 1
        for row in dom.result_rows():
            i = row["attrs"]["id"][2:]
            if f"sql-q-{i}" in sql:
                got = con.execute(f"select count(*) from ({sql[f'sql-q-{i}'].rstrip(';')})").fetchall()[0][0]
                assert got == _int(Dom.text(_cells(dom, row)[6]).split("/")[0]), row["attrs"]["data-check"]
                checked += 1
        masked = con.execute(f"select string_agg(raw_row, ' ') from ({sql['sql-rec-0-quarantined'].rstrip(';')})").fetchall()[0][0]
    assert checked > 2 * len(files)
    assert masked and '"patient_id":"***"' in masked


def test_kahn_matrix_adds_up_to_the_number_of_results(built):
    dom = Dom(built["html"])
    assert _int(Dom.text(dom.one(data_testid="kahn-total"))) == built["n_results"]
    row_totals = sum(_int(Dom.text(el)) for el in dom.find("td", data_row_total=True))
    col_totals = sum(_int(Dom.text(el)) for el in dom.find("td") if "data-col-total" in el["attrs"])
    assert row_totals == col_totals == built["n_results"] == len(dom.result_rows())
    matrix = dom.one("table", data_testid="kahn-matrix")
    temporal = [el for el in dom.find("tr", data_category="plausibility", data_subcategory="temporal")
                if matrix in el["parents"]][0]
    cells = {el["attrs"]["data-status"]: _int(Dom.text(el)) for el in dom.find("td") if temporal in el["parents"]
             and "data-status" in el["attrs"]}
    assert cells["fail"] == 2 and cells["pass"] == 1  # R-DT-01, os_days.min; R-DT-02


def test_changes_since_the_previous_run_are_classified(built):
    dom = Dom(built["html"])
    got = {}
    for block in dom.find("div", data_change=True):
        got[block["attrs"]["data-change"]] = {el["attrs"]["data-check"] for el in dom.find("li")
                                              if block in el["parents"]}
    assert got == built["expected"]


def test_waivers_by_state_and_an_expired_one_is_a_failure_again(built):
    dom = Dom(built["html"])
    states = {el["attrs"]["data-check"]: el["attrs"]["data-waiver-state"] for el in dom.find("tr")
              if "data-waiver-state" in el["attrs"]}
    assert states == {"R-CP-01": "expired", "R-CP-02": "active", "R-CP-03": "expiring"}
    # R-CP-01 was recorded as waived; its waiver expired, so the results table shows it failing
    expired = [r for r in dom.result_rows() if r["attrs"]["data-check"] == "R-CP-01"]
    assert len(expired) == 1 and expired[0]["attrs"]["data-status"] == "fail"
    assert "waiver expired" in Dom.text(expired[0])
    assert dom.one("details", data_check="R-CP-01")["attrs"]["data-status"] == "fail"
    assert dom.one("tr", data_check="R-CP-02", data_status="waived")


def test_drilldown_for_every_non_passing_result_with_samples_and_sql(built):
    dom = Dom(built["html"])
    rows = dom.result_rows()
    non_passing = [r for r in rows if r["attrs"]["data-status"] not in ("pass", "not_applicable")]
    drills = {el["attrs"]["id"] for el in dom.find("details") if el["attrs"].get("id", "").startswith("d-")}
    assert drills == {"d-" + r["attrs"]["id"][2:] for r in non_passing}
    drill = dom.one("details", data_check="R-DT-01")
    sample = [el for el in dom.find("tr") if drill in el["parents"] and el["parents"][-1]["tag"] == "tbody"]
    assert len(sample) == 20  # 25 stored, 20 shown
    assert all(Dom.text(_cells(dom, r)[1]).startswith("pk_") for r in sample)
    assert "Copy SQL" in Dom.text(drill) and "select * from marts.cohort_idds" in Dom.text(drill)
    quarantined = [d for d in dom.find("details") if d["attrs"].get("data-check", "").startswith("raw.")]
    assert quarantined and all(dom.find("table", data_testid="quarantine-rows") for _ in quarantined)


def test_impact_shows_attrition_and_survival_inputs_at_risk(built):
    dom = Dom(built["html"])
    attrition = dom.one("table", data_testid="attrition")
    assert len([el for el in dom.find("tr") if attrition in el["parents"]]) == 7  # header + 6 steps
    risks = {el["attrs"]["data-risk"]: _cells(dom, el) for el in dom.find("tr") if "data-risk" in el["attrs"]}
    assert {name: _int(Dom.text(cells[1])) for name, cells in risks.items()} == {
        "death_before_implant": 1, "followup_after_cutoff": 2, "negative_os_days": 1}
    assert "pk_aaaaaaaaaaaaaaaaaaa1" in Dom.text(risks["death_before_implant"][2])


# ---------------------------------------------------------------------------
# in the browser
# ---------------------------------------------------------------------------

browser = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return chromium(tmp / "chromium-profile", *args)


def _rendered(built, fragment: str) -> Dom:
    url = built["path"].resolve().as_uri() + fragment
    done = _chromium(built["root"], "--virtual-time-budget=2000", "--dump-dom", url)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = Dom(done.stdout.decode("utf-8"))
    assert dom.find("html", data_report_ready="1"), "the report's script did not run"
    return dom


def _visible(dom: Dom) -> list[dict]:
    return [r for r in dom.result_rows() if "hidden" not in r["attrs"]]


def _summary(dom: Dom) -> tuple[int, dict[str, int]]:
    visible = _int(Dom.text(dom.one(data_testid="summary-visible")))
    by_status = {el["attrs"]["data-summary-status"]: _int(Dom.text(el).split()[-1])
                 for el in dom.find("span") if "data-summary-status" in el["attrs"]}
    return visible, by_status


@browser
@pytest.mark.parametrize("fragment, predicate", [
    ("", lambda a: True),
    ("#status=fail", lambda a: a["data-status"] == "fail"),
    ("#engine=pandera", lambda a: a["data-engine"] == "pandera"),
    ("#severity=blocking&engine=gx", lambda a: a["data-severity"] == "blocking" and a["data-engine"] == "gx"),
    ("#status=warn%2Cfail%2Cerror&category=plausibility",
     lambda a: a["data-status"] in ("warn", "fail", "error") and a["data-category"] == "plausibility"),
    ("#q=medication_orders&sort=violations:desc", lambda a: "medication_orders" in a["data-search"]),
])
def test_filters_from_the_url_hash_and_summary_equals_visible_rows(built, fragment, predicate):
    dom = _rendered(built, fragment)
    rows = dom.result_rows()
    visible = _visible(dom)
    assert visible
    assert [r["attrs"]["id"] for r in visible] == [r["attrs"]["id"] for r in rows if predicate(r["attrs"])]
    shown, by_status = _summary(dom)
    assert shown == len(visible) == sum(by_status.values())
    assert by_status == {s: Counter(r["attrs"]["data-status"] for r in visible)[s] for s in by_status}
    assert dom.one("form", id="filters")["attrs"]["data-hash"] == fragment.lstrip("#")
    if "sort=violations:desc" in fragment:
        failed = [float(_cells(dom, r)[6]["attrs"]["data-v"]) for r in visible]
        assert failed == sorted(failed, reverse=True) and len(set(failed)) > 1


@browser
def test_screenshot_is_a_real_picture(built, tmp_path):
    shot = tmp_path / "validation.png"
    done = _chromium(built["root"], "--hide-scrollbars", "--window-size=1400,2200",
                     "--virtual-time-budget=2000", f"--screenshot={shot}", built["path"].resolve().as_uri())
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2200)
    assert len(data) > 60_000, "a blank page compresses to a few kB"
    keep = built["root"].parent / "validation-screenshot.png"
    shutil.copy2(shot, keep)
