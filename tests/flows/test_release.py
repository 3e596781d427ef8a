"""Release by record: a data defect sets aside what it touches; only run-level reasons block.

Each test starts from a copy of a published run and adds a delivery built here by hand
(not by the generator): a corrected record, a broken file, a re-delivered table.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import duckdb
import pytest
from pipeline_helpers import copy_of, latest_raw, redeliver, run_cli

pytestmark = pytest.mark.slow


def query(path, sql, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def cohort_mrns(settings) -> list[str]:
    """MRNs of the published cohort's patients (read with the pseudonymisation function)."""
    from idds.pseudonym import load_key
    from idds.warehouse import connect

    with connect(settings.warehouse, load_key(settings)) as con:
        return [r[0] for r in con.execute("""
            select distinct patient_id from raw.patients
            where idds_patient_key(patient_id) in (select patient_key from marts.cohort_idds)
            order by 1""").fetchall()]


def check_status(settings, check_id: str) -> str:
    run = query(settings.warehouse, "select run_id from dq.dq_run where status <> 'no_new_data' "
                                    "order by started_at desc limit 1")[0][0]
    rows = query(settings.warehouse, "select status from dq.dq_check_result where run_id = ? and check_id = ?",
                 [run, check_id])
    return rows[0][0] if rows else "not recorded"


@pytest.fixture
def published(pipeline_run, tmp_path):
    """A copy of the published paper-profile run (96 patients), ready for a new delivery."""
    source, code = pipeline_run
    assert code == 0
    settings = copy_of(source, tmp_path)
    return settings, settings.publish.read_bytes()


def test_an_impossible_birth_date_sets_aside_the_age_and_publishes(published, capsys):
    settings, before = published
    mrn = cohort_mrns(settings)[0]
    row = next(r for r in latest_raw(settings, "patients") if r["patient_id"] == mrn)
    redeliver(settings, "patients", [{**row, "birth_date": "1890-01-01"}])
    assert run_cli(settings) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "verdict published. Published: 96 patients; 2 values of 1 patient set aside" in out[-3]
    assert out[-2].startswith("values set aside: 2")
    assert out[-1].startswith("validation report: ")
    assert settings.publish.read_bytes() != before
    rows = query(settings.publish, "select variable, check_id, value from marts.cohort_set_aside order by 2")
    assert [r[:2] for r in rows] == [("age_years", "R-DM-01"), ("age_years", "gx.cohort_idds.age_years.range")]
    assert rows[0][2] == rows[1][2] and int(rows[0][2]) > 100  # the age as it was, now set aside
    assert query(settings.publish, "select count(*) from marts.cohort_idds where age_years is null") == [(1,)]
    # Table 1's age row is computed on the 95 remaining values and says why
    assert query(settings.publish, "select n, n_set_aside, set_aside_checks from marts.table1 "
                                   "where variable = 'age_years'") == [
        (95, 1, "R-DM-01, gx.cohort_idds.age_years.range")]
    assert query(settings.publish, "select count(*) from marts.cohort_idds") == [(96,)]
    assert check_status(settings, "R-DM-01") == "set_aside"
    study = (settings.reports / "latest" / "study.html").read_text(encoding="utf-8")
    assert "n excludes 1 patient&#39;s value set aside (R-DM-01, gx.cohort_idds.age_years.range)" in study


def test_a_waiver_restores_the_value_and_an_expired_one_sets_it_aside_again(published, tmp_path, monkeypatch):
    settings, _ = published
    mrn = cohort_mrns(settings)[1]
    row = next(r for r in latest_raw(settings, "patients") if r["patient_id"] == mrn)
    redeliver(settings, "patients", [{**row, "birth_date": "1890-01-01"}])
    assert run_cli(settings) == 0
    key, age = query(settings.publish, "select distinct patient_key, value from marts.cohort_set_aside")[0]
    waivers = tmp_path / "waivers.yml"
    future = (date.today() + timedelta(days=90)).isoformat()
    waivers.write_text(
        "".join(f"- check_id: {c}\n  record_key: {key}\n  reason: checked with the ID card\n"
                f"  owner: data steward\n  expires: {future}\n"
                for c in ("R-DM-01", "gx.cohort_idds.age_years.range")), encoding="utf-8")
    monkeypatch.setenv("IDDS_WAIVERS", str(waivers))
    assert run_cli(settings, "--force") == 0
    assert query(settings.publish, "select count(*) from marts.cohort_set_aside") == [(0,)]
    assert query(settings.publish, "select age_years from marts.cohort_idds where patient_key = ?", [key]) == [(int(age),)]
    assert query(settings.publish, "select n from marts.table1 where variable = 'age_years'") == [(96,)]
    assert check_status(settings, "R-DM-01") == "waived"
    html = (settings.reports / "latest" / "validation.html").read_text(encoding="utf-8")
    assert 'data-status="waived"' in html and "by data steward, until " + future in html
    # once the waiver has expired, the value is set aside again
    past = (date.today() - timedelta(days=1)).isoformat()
    waivers.write_text(waivers.read_text(encoding="utf-8").replace(future, past), encoding="utf-8")
    assert run_cli(settings, "--force") == 0
    assert query(settings.publish, "select count(*) from marts.cohort_set_aside") == [(2,)]
    assert check_status(settings, "R-DM-01") == "set_aside"
    # still known since the first run that saw it
    first, = query(settings.warehouse, "select min(run_id) from dq.dq_set_aside")[0]
    assert query(settings.publish, "select distinct first_seen_run_id from marts.cohort_set_aside") == [(first,)]
    assert query(settings.publish, "select count(distinct run_id) from dq.dq_set_aside") == [(3,)]
    html = (settings.reports / "latest" / "validation.html").read_text(encoding="utf-8")
    assert f"waiver by data steward expired {past}" in html


def test_one_broken_record_in_a_small_file_is_a_warning_not_a_block(published):
    settings, before = published
    rows = latest_raw(settings, "adverse_events")[:19]
    redeliver(settings, "adverse_events", rows, extra_lines=('AE_BROKEN,"unterminated,quote',))
    assert run_cli(settings) == 0
    assert settings.publish.read_bytes() != before
    assert check_status(settings, "raw.adverse_events.record.malformed") == "warn"


def test_an_empty_cohort_blocks_and_keeps_the_published_file(published, capsys):
    settings, before = published
    implants = [{**r, "is_replacement": "yes"} for r in latest_raw(settings, "idds_implants")]
    redeliver(settings, "idds_implants", implants)
    assert run_cli(settings) == 1
    out = capsys.readouterr().out
    assert "verdict blocked. Blocked: The cohort is empty" in out and "(pipeline.cohort.empty)" in out
    assert settings.publish.read_bytes() == before
    assert check_status(settings, "pipeline.cohort.empty") == "fail"


def test_a_cohort_shrunk_against_the_last_published_run_blocks(published, capsys):
    settings, before = published
    cohort = set(cohort_mrns(settings))
    implants = latest_raw(settings, "idds_implants")
    hit = [r for r in implants if r["patient_id"] in cohort][:30]
    redeliver(settings, "idds_implants", [{**r, "is_replacement": "yes"} for r in hit])
    assert run_cli(settings) == 1
    out = capsys.readouterr().out
    n = query(settings.warehouse, "select cohort_n from dq.dq_run order by started_at desc limit 1")[0][0]
    assert n < 96 * 0.8
    assert "The cohort shrank from 96 patients (published run " in out and f") to {n}: {96 - n} fewer (" in out
    assert "(pipeline.cohort.shrunk)" in out
    assert settings.publish.read_bytes() == before
    assert check_status(settings, "pipeline.cohort.shrunk") == "fail"


def _bad_death_date(settings) -> None:
    """One followed, deceased cohort patient's death report dated before the implant."""
    cohort = set(cohort_mrns(settings))
    row = next(r for r in latest_raw(settings, "followups")
               if r["patient_id"] in cohort and r["death_date"] and r["death_date"][:1].isdigit())
    redeliver(settings, "followups", [{**row, "death_date": "2020-01-01"}])


def test_a_primary_variable_set_aside_for_a_few_patients_still_publishes(published):
    settings, _ = published
    _bad_death_date(settings)
    assert run_cli(settings) == 0
    assert check_status(settings, "pipeline.set_aside.primary") == "pass"
    variables = {r[0] for r in query(settings.publish, "select variable from marts.cohort_set_aside")}
    assert {"os_days", "os_months", "os_event"} <= variables
    assert query(settings.publish, "select n from marts.survival_summary where analysis_set = 'sensitivity' "
                                   "and stratum = 'overall'") == [(95,)]


def test_a_primary_variable_set_aside_beyond_its_share_blocks(published, monkeypatch, capsys):
    settings, before = published
    _bad_death_date(settings)
    monkeypatch.setenv("IDDS_MAX_PRIMARY_SET_ASIDE_SHARE", "0.005")
    monkeypatch.setenv("IDDS_SHARE_MIN_ROWS", "1")
    assert run_cli(settings) == 1
    out = capsys.readouterr().out
    assert "The primary variable os_months is set aside for 1 of 96 patients (1.0 %)" in out
    assert "(pipeline.set_aside.primary)" in out
    assert settings.publish.read_bytes() == before


def test_a_dbt_build_error_blocks(published, capsys):
    settings, before = published
    con = duckdb.connect(str(settings.warehouse))
    con.execute("drop table staging.stg_emr__patients")
    con.execute("create table staging.stg_emr__patients (patient_key varchar)")
    con.close()
    mrn = cohort_mrns(settings)[2]
    row = next(r for r in latest_raw(settings, "patients") if r["patient_id"] == mrn)
    redeliver(settings, "patients", [row])
    assert run_cli(settings) == 1
    assert "(pipeline.dbt.build)" in capsys.readouterr().out
    assert settings.publish.read_bytes() == before
    assert check_status(settings, "pipeline.dbt.build") == "error"


def test_a_broken_reconciliation_blocks(published, monkeypatch, capsys):
    from idds.ingest import load

    settings, before = published
    mrn = cohort_mrns(settings)[3]
    row = next(r for r in latest_raw(settings, "patients") if r["patient_id"] == mrn)
    redeliver(settings, "patients", [row])
    real = load._check_identity

    def lose_one(fc):  # as if one record had vanished between the file and the warehouse
        if fc.file_stem == "patients":
            fc.rows_loaded -= 1
        real(fc)

    monkeypatch.setattr(load, "_check_identity", lose_one)
    assert run_cli(settings) == 1
    out = capsys.readouterr().out
    assert "Blocked: The records of a delivery do not reconcile: 9999-12-31/patients.csv: 1 records read" in out
    assert "(pipeline.reconciliation.identity)" in out
    assert settings.publish.read_bytes() == before
    assert check_status(settings, "pipeline.reconciliation.identity") == "fail"
    assert query(settings.warehouse, "select count(*) from raw.patients where _delivery_id = '9999-12-31'") == [(0,)]


# ---------------------------------------------------------------------------------------
# the quirks extract: one ordinary clinical quirk per reachable blocking check
# ---------------------------------------------------------------------------------------

def _logged(quirks_extract, settings) -> set[tuple[str, str, str]]:
    """truth/quirks.csv as (patient_key, check_id, variable)."""
    import csv

    from idds.pseudonym import load_key
    from idds.warehouse import install_functions

    with open(quirks_extract / "truth" / "quirks.csv", encoding="utf-8", newline="") as f:
        log = list(csv.DictReader(f))
    con = duckdb.connect()
    install_functions(con, load_key(settings))
    out = {(con.execute("select idds_patient_key(?)", [r["patient_id"]]).fetchall()[0][0], r["check_id"],
            r["variable"]) for r in log}
    con.close()
    return out


def _latent(quirks_extract) -> dict[str, dict]:
    import csv

    with open(quirks_extract / "truth" / "latent.csv", encoding="utf-8", newline="") as f:
        return {r["patient_id"]: r for r in csv.DictReader(f)}


def test_quirks_publish_with_exactly_the_logged_values_set_aside(quirks_run, quirks_extract):
    settings, code, out = quirks_run
    assert code == 0
    logged = _logged(quirks_extract, settings)
    rows = query(settings.publish, "select patient_key, check_id, variable, value from marts.cohort_set_aside")
    assert {r[:3] for r in rows} == logged and len(rows) == len(logged)
    n_values = len(logged)
    assert out[-3].startswith("run ") and f"verdict published. Published: 95 patients; {n_values} values of " in out[-3]
    assert out[-2].startswith(f"values set aside: {n_values} ")
    # the set-aside values are NULL in the cohort; the patient set aside as a whole left it
    # through its own attrition step, with its rule
    whole = {k for k, _, v in logged if v == "patient"}
    assert query(settings.publish, "select count(*) from marts.cohort_idds") == [(96 - len(whole),)]
    for key, _, variable in logged - {(k, c, v) for k, c, v in logged if v == "patient"}:
        assert query(settings.publish, f'select "{variable}" from marts.cohort_idds where patient_key = ?',
                     [key]) == [(None,)], variable
    step = query(settings.publish, "select n_excluded, reason from marts.cohort_attrition where step = 'set_aside'")
    assert step == [(len(whole), "R-ID-03 (1)")]
    assert query(settings.publish, "select exclusion_step from marts.dim_patients where patient_key in "
                                   "(select unnest(?))", [sorted(whole)]) == [("set_aside",)]
    for check_id in {c for _, c, _ in logged if not c.startswith("raw.")}:
        assert check_status(settings, check_id) == "set_aside", check_id
    assert {r[0] for r in query(settings.warehouse, "select check_id from dq.dq_check_result r join dq.dq_check c "
                                                    "using (check_id) where r.status in ('fail', 'error') "
                                                    "and c.severity = 'blocking'")} == set()


def _counted(row: tuple) -> int:
    statistic, n, denominator = row
    return int(denominator if statistic == "n_pct" else n)


def test_every_statistic_loses_exactly_its_set_aside_values(quirks_run, pipeline_run, quirks_extract):
    """Tables 1-3: each statistic's n / denominator is the clean run's minus its patients
    whose values were set aside, counted here from the truth (not from the pipeline)."""
    settings, _, _ = quirks_run
    clean, _ = pipeline_run
    logged = _logged(quirks_extract, settings)
    latent = _latent(quirks_extract)
    key_of = {}
    from idds.pseudonym import load_key
    from idds.warehouse import install_functions
    con = duckdb.connect()
    install_functions(con, load_key(settings))
    for mrn in latent:
        key_of[con.execute("select idds_patient_key(?)", [mrn]).fetchall()[0][0]] = latent[mrn]
    con.close()
    # a value counts as lost when the truth has one
    lost = {(k, v) for k, _, v in logged if v == "patient" or key_of[k].get(v, "") not in ("", None)}
    checked = 0
    for table in ("table1", "table2", "table3"):
        sql = (f"select section, variable, level, statistic, n, denominator, n_set_aside from marts.{table} "
               "order by row_order")
        before = {r[:4]: r[3:6] for r in query(clean.publish, sql)}
        for r in query(settings.publish, sql):
            section, variable, level = r[:3]
            if variable not in key_of[next(iter(key_of))] or level in ("opioid users",) or \
                    variable in ("itt_drug", "itt_dose_mg", "os_months", "initial_daily_dose_mg"):
                continue  # derived, or a denominator that depends on another set-aside variable
            followed = "followed patients" in section
            expected = len({k for k, v in lost if v in (variable, "patient") or (followed and v == "followup_status")
                            if not followed or key_of[k]["followup_status"] == "followed"})
            drop = _counted(before[r[:4]]) - _counted(r[3:6])
            assert drop == expected == r[6], (table, variable, level, drop, expected, r[6])
            checked += 1
    assert checked > 60
    # the paired test and the survival analysis lose the follow-up patients' NRS and OS values
    nrs = {k for k, v in lost if v in ("baseline_nrs", "followup_nrs", "patient")
           and key_of[k]["followup_status"] == "followed"}
    assert query(settings.publish, "select n, n_set_aside from marts.pain_response where test = 'paired_t'") == [
        (72 - len(nrs), len(nrs))]
    os_lost = {k for k, v in lost if v in ("os_days", "os_months", "os_event", "patient", "followup_status")
               and key_of[k]["followup_status"] == "followed"}
    assert query(settings.publish, "select n, n_set_aside from marts.survival_summary "
                                   "where analysis_set = 'followup' and stratum = 'overall'") == [
        (72 - len(os_lost), len(os_lost))]


def test_the_study_report_footnotes_every_statistic_that_lost_values(quirks_run):
    import re

    settings, _, _ = quirks_run
    html = (settings.reports / "latest" / "study.html").read_text(encoding="utf-8")
    affected = sum(query(settings.publish, f"select count(*) from marts.{t} where n_set_aside > 0")[0][0]
                   for t in ("table1", "table2", "table3"))
    table_html = "".join(re.findall(r'<table data-testid="table\d">.*?</table>', html, flags=re.S))
    assert table_html.count('<sup class="fn">') == affected > 20
    notes = re.findall(r'<li id="fn-\d+">([^<]*)</li>', html)
    assert notes and all(n.startswith("n excludes ") for n in notes)
    assert any("R-CS-01" in n for n in notes) and any("R-ID-03" in n for n in notes)
    marked = query(settings.publish, "select paper_key from marts.reproduction where set_aside <> ''")
    assert {"cost_total", "cost_self_pay", "age"} <= {r[0] for r in marked}


def test_waivers_for_every_quirk_publish_every_value(quirks_run, tmp_path, monkeypatch):
    settings = copy_of(quirks_run[0], tmp_path)
    pairs = query(settings.publish, "select distinct check_id, patient_key from marts.cohort_set_aside order by 1, 2")
    expires = (date.today() + timedelta(days=30)).isoformat()
    waivers = tmp_path / "waivers.yml"
    waivers.write_text("".join(
        f"- check_id: {c}\n  record_key: {k}\n  reason: confirmed with the ward\n  owner: steward\n"
        f"  expires: {expires}\n" for c, k in pairs), encoding="utf-8")
    monkeypatch.setenv("IDDS_WAIVERS", str(waivers))
    assert run_cli(settings, "--force") == 0
    assert query(settings.publish, "select count(*) from marts.cohort_set_aside") == [(0,)]
    assert query(settings.publish, "select count(*) from marts.cohort_idds") == [(96,)]
    # every value is used again, as delivered: the values the quirks run set aside are back
    restored = query(quirks_run[0].publish, "select distinct patient_key, variable, value from marts.cohort_set_aside "
                                            "where variable <> 'patient'")
    for key, variable, value in restored:
        assert query(settings.publish, f'select cast("{variable}" as varchar) from marts.cohort_idds '
                                       "where patient_key = ?", [key]) == [(value,)], variable
    for table in ("table1", "table2", "table3", "pain_response", "survival_summary", "cox_model"):
        assert query(settings.publish, f"select coalesce(sum(n_set_aside), 0) from marts.{table}") == [(0,)]
    waived = query(settings.warehouse, "select count(*) from dq.dq_set_aside where status = 'waived' and run_id = "
                                       "(select max(run_id) from dq.dq_set_aside)")[0][0]
    assert waived == len(quirks_rows := query(quirks_run[0].publish, "select * from marts.cohort_set_aside")) \
        and quirks_rows


def test_the_set_aside_section_in_a_browser(quirks_run, tmp_path):
    from pipeline_helpers import CHROMIUM, chromium

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    settings, _, _ = quirks_run
    url = (settings.reports / "latest" / "validation.html").resolve().as_uri()
    done = chromium(tmp_path / "profile", "--virtual-time-budget=2000", "--dump-dom", url + "#set-aside")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = done.stdout.decode("utf-8")
    section = dom[dom.index('<section id="set-aside"'):]
    section = section[:section.index("</section>")]
    pairs = query(settings.publish, "select count(*) from (select distinct check_id, patient_key "
                                    "from marts.cohort_set_aside)")[0][0]
    assert section.count('data-status="set_aside"') == pairs
    assert "R-CS-01" in section and "record_key: pk_" in section and "expectations/waivers.yml" in section
    assert 'data-testid="verdict-sentence"' in dom and "Published: 95 patients" in dom
    shot = tmp_path / "set-aside.png"
    done = chromium(tmp_path / "profile2", "--window-size=1400,2000", "--virtual-time-budget=2000",
                    f"--screenshot={shot}", url + "#set-aside")
    assert shot.exists() and shot.stat().st_size > 40_000, done.stderr.decode(errors="replace")[-1000:]
    shutil.copy2(shot, settings.reports.parent / "set-aside-screenshot.png")
