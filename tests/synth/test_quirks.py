"""Quirks mode (`idds synth --quirks`): ordinary clinical recording errors, logged exactly.

Fast tests: the output is deterministic, ``truth/quirks.csv`` covers every blocking check
of the catalogue that sets values aside (except the documented unreachable ones), and the
rendered files hold the injected values (read back here with a small reader of their own,
checked against the latent truth).

End to end (slow): the real pipeline runs on the quirks deliveries; the set-aside rows its
warehouse defines (each failing check's drill-down SQL over the built cohort, and the
quarantined records of cohort patients) are exactly ``quirks.csv``; and no check reports
an in-cohort failure on the quirks run that it does not report on the clean run of the
same seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from test_render import decode  # the same independent reader of delivered bytes

from synth import generate
from synth.quirks import QUIRK_PLAN, UNREACHABLE, catalogue
from synth.variants import SCHEMA

CUTOFF = dt.date(2024, 3, 20)
PRIMARY = ("os_months", "os_event", "baseline_nrs", "followup_nrs")


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quirks_out(quirks_extract) -> Path:
    return quirks_extract


@pytest.fixture(scope="module")
def log(quirks_out) -> list[dict]:
    with open(quirks_out / "truth" / "quirks.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def latent(quirks_out) -> dict[str, dict]:
    with open(quirks_out / "truth" / "latent.csv", encoding="utf-8", newline="") as f:
        return {r["patient_id"]: r for r in csv.DictReader(f)}


def set_aside_checks() -> dict[str, list[str]]:
    """Blocking checks of the catalogue with `sets_aside` -> the variables they set aside."""
    out = {}
    for check_id, entry in catalogue()["checks"].items():
        target = entry.get("sets_aside")
        if target and entry.get("severity") == "blocking":
            out[check_id] = ["patient"] if target == "patient" else list(target)
    return out


def contract_sets_aside() -> dict[str, list[str]]:
    return {stem: ["patient"] if t == "patient" else list(t)
            for stem, t in (catalogue().get("contract_sets_aside") or {}).items()}


def expected_variables(check_id: str) -> list[str]:
    if check_id.startswith("raw."):
        return contract_sets_aside()[check_id.split(".")[1]]
    return set_aside_checks()[check_id]


# ---------------------------------------------------------------------------
# fast: determinism, coverage, the log's shape
# ---------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_quirks_output(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, seed=11, deliveries=2, quirks=True)
    generate(b, seed=11, deliveries=2, quirks=True)
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert fa == fb and Path("truth/quirks.csv") in fa
    for p in fa:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p


def test_quirks_cover_every_reachable_set_aside_check_exactly_once(log):
    checks = set_aside_checks()
    logged = {r["check_id"] for r in log if not r["check_id"].startswith("raw.")}
    unreachable = set(UNREACHABLE)
    # the documented list names only catalogue checks, none of them has a quirk
    assert unreachable <= set(checks), unreachable - set(checks)
    assert not unreachable & logged
    assert logged == set(checks) - unreachable, (set(checks) - unreachable) ^ logged
    # one in-cohort violation per check: one patient each
    for check_id in logged | {r["check_id"] for r in log}:
        assert len({r["patient_id"] for r in log if r["check_id"] == check_id}) == 1, check_id
    assert all(reason.strip() for reason in UNREACHABLE.values())


def test_each_row_is_a_variable_the_catalogue_sets_aside(log):
    pairs: dict[tuple[str, str], list[str]] = {}
    for r in log:
        pairs.setdefault((r["patient_id"], r["check_id"]), []).append(r["variable"])
        assert r["description"].strip()
    for (_, check_id), variables in pairs.items():
        assert sorted(variables) == sorted(expected_variables(check_id)), check_id
    assert len(log) == len({(r["patient_id"], r["check_id"], r["variable"]) for r in log})


def test_contract_quirks_quarantine_records_of_cohort_patients(log, latent):
    contract = {r["check_id"] for r in log if r["check_id"].startswith("raw.")}
    assert 2 <= len(contract) <= 3
    assert {r["patient_id"] for r in log} <= set(latent)


def test_quirks_stay_below_the_run_level_thresholds(log, latent):
    primary = {r["patient_id"] for r in log if r["variable"] in PRIMARY}
    assert len(primary) <= 2, primary
    whole = {r["patient_id"] for r in log if r["variable"] == "patient"}
    release = catalogue()["release"]
    assert len(primary | whole) < release["max_primary_set_aside_share"] * len(latent)
    # distinct patients, except the explanted patient who carries two quirks (R-DT-05, R-FU-01)
    by_patient: dict[str, set[str]] = {}
    for r in log:
        by_patient.setdefault(r["patient_id"], set()).add(r["check_id"])
    shared = {p for p, cs in by_patient.items()
              if len({name for name, checks in QUIRK_PLAN if set(checks) & cs}) > 1}
    assert shared == {p for p, cs in by_patient.items() if {"R-DT-05", "R-FU-01"} <= cs}


def test_quirks_refuse_the_dirty_and_hospital_modes(tmp_path):
    from idds.cli import main

    with pytest.raises(ValueError):
        generate(tmp_path / "x", seed=11, dirty=True, quirks=True)
    assert main(["synth", "--out", str(tmp_path / "y"), "--quirks", "--dirty"]) == 2
    assert not (tmp_path / "y").exists()


# ---------------------------------------------------------------------------
# fast: the rendered files hold the injected values (own reader)
# ---------------------------------------------------------------------------

FILE_STEM = {alias: stem for stem, (alias, _, _) in SCHEMA.items()} | {stem: stem for stem in SCHEMA}
COLUMN = {stem: {alias: col for col, alias, _ in cols} for stem, (_, _, cols) in SCHEMA.items()}
MISSING = {"", "null", "na", "n/a", "无", "-", "/"}
FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")


def read_landing(landing: Path) -> dict[str, list[dict]]:
    """Every record of every file of every delivery, keyed by canonical column names."""
    out: dict[str, list[dict]] = {s: [] for s in SCHEMA}
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        for f in sorted(folder.iterdir()):
            if f.name == "manifest.json":
                continue
            stem = FILE_STEM[f.name.split(".")[0]]
            reader = csv.reader(io.StringIO(decode(f.read_bytes()), newline=""))
            header = [COLUMN[stem].get(h.strip(), h.strip()) for h in next(reader)]
            out[stem] += [dict(zip(header, raw, strict=True)) for raw in reader]
    return out


def text(s: str | None) -> str | None:
    return None if s is None or s.strip().lower() in MISSING else s.strip()


def number(s: str | None) -> tuple[Decimal | None, str]:
    s = text(s)
    if s is None:
        return None, ""
    m = re.match(r"^([+-]?\d+(?:\.\d+)?)\s*(.*)$", s.translate(FULLWIDTH).replace(",", ""))
    assert m, s
    return Decimal(m[1]), m[2].strip()


def day(s: str | None) -> dt.date | None:
    s = text(s)
    if s is None:
        return None
    m = re.match(r"(\d{4})[-/年](\d{1,2})[-/月](\d{1,2})", s) or re.match(r"(\d{4})(\d{2})(\d{2})", s)
    return dt.date(int(m[1]), int(m[2]), int(m[3]))


def moment(s: str) -> dt.datetime:
    m = re.search(r"[ T](\d{2}):(\d{2})(?::(\d{2}))?$", s.strip())
    return dt.datetime.combine(day(s), dt.time(int(m[1]), int(m[2]), int(m[3] or 0)))


def code(s: str | None) -> str | None:
    s = text(s)
    return None if s is None else s.lower()


@pytest.fixture(scope="module")
def files(quirks_out) -> dict[str, list[dict]]:
    return read_landing(quirks_out / "landing")


def of(files, stem, **match) -> list[dict]:
    return [r for r in files[stem] if all((text(r.get(k)) or "") == v for k, v in match.items())]


def test_the_rendered_files_hold_the_injected_values(log, latent, files):
    patient = {r["check_id"]: r["patient_id"] for r in log}
    checked = set()

    def lat(check_id):
        checked.add(check_id)
        return latent[patient[check_id]]

    p = lat("R-CS-01")
    adm = of(files, "admissions", admission_id=p["admission_id"])[-1]
    assert number(adm["self_pay"])[0] == number(adm["total_charge"])[0] + Decimal("0.30")
    p = lat("R-CS-02")
    adm = of(files, "admissions", admission_id=p["admission_id"])[-1]
    assert number(adm["total_charge"])[0] == (Decimal(p["total_charge_cny"]) / 10000).quantize(Decimal("0.01"))
    p = lat("R-DM-01")
    assert day(of(files, "patients", patient_id=p["patient_id"])[-1]["birth_date"]).year == \
        day(p["birth_date"]).year - 40
    p = lat("R-DM-03")
    weights = [number(r["value"]) + (code(r.get("unit")),)
               for r in of(files, "measurements", patient_id=p["patient_id"], admission_id=p["admission_id"])
               if code(r["item"]) in ("weight", "体重")]
    assert any(v == Decimal(p["weight_kg"]) + 100 and (u or unit) == "kg" for v, u, unit in weights), weights
    p = lat("R-DM-04")
    weights = [number(r["value"]) + (code(r.get("unit")),)
               for r in of(files, "measurements", patient_id=p["patient_id"], admission_id=p["admission_id"])
               if code(r["item"]) in ("weight", "体重")]
    assert any(v == Decimal(p["weight_kg"]) and "斤" in (u, unit) for v, u, unit in weights), weights
    p = lat("R-DT-03")
    implant = day(p["implant_date"])
    primaries = [day(r["diagnosis_date"]) for r in of(files, "diagnoses", patient_id=p["patient_id"])
                 if re.match(r"C(\d{2})", text(r["icd10_code"]) or "")
                 and not 77 <= int(text(r["icd10_code"])[1:3]) <= 79]
    assert primaries and implant < min(primaries) <= day(p["discharge_date"])
    p = lat("R-DT-04")
    deaths = [day(r["death_date"]) for r in of(files, "followups", patient_id=p["patient_id"]) if text(r["death_date"])]
    assert deaths and max(deaths) < day(p["implant_date"]) < day(p["death_date"])
    implants = {text(r["implant_id"]): r for r in files["idds_implants"]}
    p = lat("R-DT-05")
    assert day(implants[p["implant_id"]]["explant_date"]) > CUTOFF
    p = lat("R-DT-06")
    assert p["in_hospital_death"] == "True"
    assert day(implants[p["implant_id"]]["explant_date"]) < day(p["implant_date"])
    p = lat("R-FU-01")
    assert p["followup_status"] == "explanted"
    assert any(code(r["satisfied"]) for r in of(files, "followups", patient_id=p["patient_id"]))
    p = lat("R-FU-04")
    assert p["systemic_opioid_user"] == "False"
    assert any(code(r["systemic_opioid"]) in ("stopped", "已停用")
               for r in of(files, "followups", patient_id=p["patient_id"]))
    p = lat("R-ID-03")
    proc = of(files, "procedures", procedure_id=text(implants[p["implant_id"]]["procedure_id"]))[-1]
    assert "更换" in proc["procedure_name"] and code(implants[p["implant_id"]]["is_replacement"]) in ("no", "否")
    p = lat("R-IT-01")
    assert any(text(r["drug"]) is None for r in of(files, "itt_trials", patient_id=p["patient_id"]))
    p = lat("R-IT-02")
    assert any(number(r["dose"])[0] == Decimal(p["itt_dose_mg"]) * 1000 and code(r["dose_unit"]) == "mg"
               for r in of(files, "itt_trials", patient_id=p["patient_id"]))
    p = lat("R-LS-02")
    adm = of(files, "admissions", admission_id=p["admission_id"])[-1]
    assert (day(p["discharge_date"]) - moment(adm["admit_time"]).date()).days > 90
    assert day(adm["admit_time"]) < day(p["admission_date"])
    p = lat("R-OP-01")
    assert any("羟考酮" in r["drug_name"] and code(r["route"]) in ("im", "肌注")
               for r in of(files, "medication_orders", patient_id=p["patient_id"]))
    p = lat("R-OP-05")
    assert any(number(r["dose"])[0] >= 500 and code(r["route"]) in ("po", "口服")
               for r in of(files, "medication_orders", patient_id=p["patient_id"], admission_id=p["admission_id"]))
    p = lat("R-OR-01")
    proc = of(files, "procedures", procedure_id=text(implants[p["implant_id"]]["procedure_id"]))[-1]
    assert moment(proc["end_time"]) - moment(proc["start_time"]) > dt.timedelta(hours=24)
    p = lat("R-OR-02")
    upper, lower = re.match(r"^([TL])(\d+)-([TL]\d+)$", implants[p["implant_id"]]["insertion_level"]).group(2, 3)
    assert lower == f"L{int(upper) + 2}" and p["insertion_level"] != implants[p["implant_id"]]["insertion_level"]
    p = lat("R-OR-03")
    assert text(implants[p["implant_id"]]["catheter_tip_level"]) == "S2" and p["catheter_cephalad"] == "False"
    p = lat("R-OR-04")
    assert p["catheter_cephalad"] == "True"
    assert code(implants[p["implant_id"]]["catheter_direction"]) in ("caudad", "向下")
    p = lat("R-PN-04")
    assert not [r for r in of(files, "measurements", patient_id=p["patient_id"])
                if code(r["item"]) in ("pain_site", "疼痛部位")]
    p = lat("R-PU-03")
    programs = [r for r in files["pump_programs"] if text(r["implant_id"]) == p["implant_id"]]
    first = min(programs, key=lambda r: moment(r["programmed_at"]))
    assert number(first["daily_dose"])[0] == Decimal(p["initial_daily_dose_mg"]) * 1000
    assert code(first["daily_dose_unit"]) == "mg/d"
    for check_id, stem, column, raw in [
            ("raw.medication_orders.route.accepted", "medication_orders", "route", "鼻饲"),
            ("raw.treatment_history.treatment_type.accepted", "treatment_history", "treatment_type", "中医治疗"),
            ("raw.adverse_events.event_type.accepted", "adverse_events", "event_type", "皮疹")]:
        if check_id in patient:
            p = lat(check_id)
            assert [r for r in of(files, stem, patient_id=p["patient_id"]) if text(r[column]) == raw], check_id
    # every quirk's main check was looked at (the gx checks share their patient with an R-* check)
    companions = {c for _, checks in QUIRK_PLAN for c in checks[1:]}
    assert {c for c in patient if c not in companions} == checked
    for _, checks in QUIRK_PLAN:
        assert len({patient[c] for c in checks}) == 1, checks


# ---------------------------------------------------------------------------
# slow: the real pipeline sets aside exactly what quirks.csv says
# ---------------------------------------------------------------------------

def built_cohort_findings(settings, key: str, scratch: Path) -> dict:
    """What the warehouse of a run defines, over the cohort as dbt built it (the pipeline
    may set values aside in marts.cohort_idds afterwards): in-cohort patient keys per
    failing dbt / GX check, failing checks without patients, quarantined records of
    cohort patients."""
    from idds.warehouse import connect

    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / settings.warehouse.name  # same file name: the drill-down SQL names the catalog
    shutil.copy2(settings.warehouse, copy)
    compiled = settings.dbt_target_dir / "compiled" / "idds_registry" / "models" / "marts" / "cohort_idds.sql"
    with connect(copy, key) as con:
        con.execute(f"create or replace table marts.cohort_idds as {compiled.read_text(encoding='utf-8')}\n")
        run_id = con.execute("select max(run_id) from dq.dq_check_result where engine = 'dbt'").fetchall()[0][0]
        cohort = {r[0] for r in con.execute("select patient_key from marts.cohort_idds").fetchall()}
        in_cohort: dict[str, set[str]] = {}
        without_patients: set[str] = set()
        results = con.execute(
            "select check_id, drilldown_sql from dq.dq_check_result where run_id = ? and rows_failed > 0 "
            "and engine in ('dbt', 'gx') and drilldown_sql is not null order by check_id", [run_id]).fetchall()
        for check_id, sql in results:
            con.execute(f"create or replace temp table _failing as select * from ({sql}\n)")
            names = {c[0] for c in con.execute("select * from _failing limit 0").description}
            if "patient_key" not in names:
                without_patients.add(check_id)
                continue
            if "in_cohort" in names:
                where = "coalesce(in_cohort, false)"
            elif "implant_id" in names:
                where = "implant_id in (select implant_id from marts.cohort_idds)"
            else:
                where = "patient_key in (select patient_key from marts.cohort_idds)"
            keys = {r[0] for r in con.execute(f"select distinct patient_key from _failing where {where}").fetchall()}
            if keys:
                in_cohort[check_id] = keys
        quarantined = {
            (pk, check_id, stem) for pk, check_id, stem in con.execute(
                "select idds_patient_key(patient_id), check_ids[1], file_stem from dq.quarantine "
                "where run_id = ? and patient_id is not null and len(check_ids) > 0", [run_id]).fetchall()
            if pk in cohort}
    return {"run_id": run_id, "cohort": cohort, "in_cohort": in_cohort, "without_patients": without_patients,
            "quarantined": quarantined}


def set_aside_rows(found: dict) -> set[tuple[str, str, str]]:
    """The set-aside rows the definition gives: (patient_key, check_id, variable)."""
    checks = set_aside_checks()
    rows = set()
    for check_id, keys in found["in_cohort"].items():
        for key in keys:
            for variable in checks.get(check_id, []):
                rows.add((key, check_id, variable))
    contract = contract_sets_aside()
    for key, check_id, stem in found["quarantined"]:
        for variable in contract.get(stem, []):
            rows.add((key, check_id, variable))
    return rows


@pytest.mark.slow
def test_the_pipeline_sets_aside_exactly_the_logged_quirks(pipeline_run, quirks_run, log, tmp_path_factory):
    import duckdb

    from idds.pseudonym import load_key
    from idds.warehouse import install_functions

    clean_settings, _ = pipeline_run
    root = tmp_path_factory.mktemp("quirks-check")
    settings = quirks_run[0]  # the verification reads the warehouse, not the verdict
    key = load_key(settings)
    quirky = built_cohort_findings(settings, key, root / "quirky")
    clean = built_cohort_findings(clean_settings, key, root / "clean")
    assert len(quirky["cohort"]) == len(clean["cohort"]) == 96

    con = duckdb.connect()
    install_functions(con, key)
    pk = {mrn: con.execute("select idds_patient_key(?)", [mrn]).fetchall()[0][0]
          for mrn in sorted({r["patient_id"] for r in log})}
    con.close()
    logged = {(pk[r["patient_id"]], r["check_id"], r["variable"]) for r in log}
    # every quirk patient is in the cohort as built (set-asides come after the build)
    assert set(pk.values()) <= quirky["cohort"]
    assert set_aside_rows(quirky) == logged

    # no other check reports an in-cohort failure (or a patient-less failure) that the clean
    # run of the same seed does not
    logged_pairs = {(k, c) for k, c, _ in logged}
    new = {(k, c) for c, keys in quirky["in_cohort"].items() for k in keys - clean["in_cohort"].get(c, set())}
    assert new <= logged_pairs, sorted(new - logged_pairs)
    assert quirky["without_patients"] <= clean["without_patients"]
    new_quarantine = {(k, c) for k, c, _ in quirky["quarantined"] - clean["quarantined"]}
    assert new_quarantine <= logged_pairs
