"""Release by record: a data defect sets aside what it touches; only run-level reasons block.

Each test starts from a copy of a published run and adds a delivery built here by hand
(not by the generator): a corrected record, a broken file, a re-delivered table.
"""

from __future__ import annotations

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
