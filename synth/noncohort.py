"""Patients a real extract holds besides the 96 included ones.

Each one is built to leave the cohort at exactly one attrition step of the study
definition, and is recorded in the truth with that step:

* ``no_implant``: patients of other departments (and pain-clinic patients whose
  screening trial failed) with admissions, diagnoses, measurements and orders;
* ``no_first_implant``: the only implant in the extract is a replacement;
* ``implant_outside_window``: first implants in 2020 or 2024;
* ``nonmalignant_pain``: pumps for non-malignant pain (no C-code);
* ``missing_data:<variable>``: a cancer-pain first implant in the window lacking one
  required baseline variable.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from .render import (
    COMORBID,
    CUTOFF,
    NONMALIGNANT_PAIN,
    OTHER_DEPTS,
    PAIN_SITES,
    SITE_CODES,
    UNRELATED,
    D,
    Ids,
    Opts,
    PatientRenderer,
    Row,
    at,
    chance,
    phi,
    pick,
    rint,
)

MISSING_KINDS = [("height", "bmi"), ("adl", "adl_barthel"), ("nrs_pre", "baseline_nrs"),
                 ("insertion", "insertion_level"), ("tip", "catheter_tip_level"), ("programs", "idds_drug"),
                 ("sex", "sex")]


def new_pid(r: np.random.Generator, taken: set[str]) -> str:
    while True:
        s = f"00{rint(r, 10_000_000, 99_999_999)}"
        if s not in taken:
            taken.add(s)
            return s


def pseudo_latent(r: np.random.Generator, pid: str, implant: dt.date, ids: Ids, malignant: bool = True) -> dict:
    """A latent-like record of a pump patient (never included: used for non-cohort patients)."""
    pre = rint(r, 1, 7)
    post = rint(r, 2, 10)
    adm = implant - dt.timedelta(days=pre)
    dis = min(implant + dt.timedelta(days=post), CUTOFF - dt.timedelta(days=2))
    age = rint(r, 35, 85)
    birth = dt.date(implant.year - age, rint(r, 1, 12), rint(r, 1, 28))
    site = pick(r, list(SITE_CODES)) if malignant else None
    cdx = implant - dt.timedelta(days=rint(r, 60, 1500)) if malignant else None
    pon = implant - dt.timedelta(days=rint(r, 20, 400))
    if cdx and pon < cdx and chance(r, 0.8):
        pon = cdx + dt.timedelta(days=rint(r, 0, max(0, (implant - cdx).days - 10)))
    h = D(rint(r, 150, 182))
    w = D(rint(r, 380, 800)) / 10
    drug = pick(r, ["morphine", "morphine", "hydromorphone", "morphine+bupivacaine"])
    lc = min(CUTOFF, dis + dt.timedelta(days=rint(r, 30, 400)))
    p = {
        "patient_id": pid, "implant_id": ids.next("idds_implants"), "admission_id": ids.next("admissions"),
        "implant_date": implant, "admission_date": adm, "discharge_date": dis, "birth_date": birth,
        "age_years": age, "sex": pick(r, ["M", "F"]), "insurance_type": pick(r, ["employee", "resident", "self_pay"]),
        "height_cm": h, "weight_kg": w, "bmi": None, "adl_barthel": pick(r, [40, 50, 60, 70, 80, 90]),
        "pressure_sore": chance(r, 0.2), "skin_compromising_line": chance(r, 0.2),
        "arrival_wheelchair_or_cart": chance(r, 0.5), "cancer_site": site,
        "cancer_icd10": SITE_CODES[site] if site else None, "cancer_dx_date": cdx, "met_other_sites": None,
        "metastasis_any": False, "met_bone": False, "met_liver": False, "met_lung": False, "met_other": False,
        "pain_onset_date": pon, "pain_preceded_cancer": bool(cdx and pon < cdx),
        "prior_surgery": chance(r, 0.4), "prior_chemoradiotherapy": malignant and chance(r, 0.6),
        "prior_immunotherapy": malignant and chance(r, 0.2), "prior_pain_intervention": chance(r, 0.2),
        "baseline_ome_mg_per_day": D(pick(r, [0, 60, 120, 200, 360])), "n_adjuvant_drugs": rint(r, 0, 2),
        "baseline_nrs": rint(r, 5, 9), "implant_reason": "inadequate_relief", "itt_count": rint(r, 0, 1),
        "itt_drug": "morphine", "itt_dose_mg": D("0.2"), "surgery_duration_hours": D(rint(r, 80, 200)) / 60,
        "insertion_level": pick(r, ["L2-L3", "L3-L4", "L1-L2"]), "catheter_tip_level": pick(r, ["T6", "T8", "T10"]),
        "catheter_cephalad": True, "device_model": pick(r, ["SynchroMed II 8637-20", "SynchroMed II 8637-40"]),
        "idds_drug": drug, "initial_daily_dose_mg": D(pick(r, ["0.5", "1", "0.2"])) if drug != "hydromorphone"
        else D("0.1"),
        "total_charge_cny": D(rint(r, 13000000, 17000000)) / 100, "self_pay_cny": D(rint(r, 2000000, 6000000)) / 100,
        "comp_pdph": chance(r, 0.1), "comp_fever": chance(r, 0.1), "comp_urinary_retention_constipation": False,
        "comp_infection": False, "comp_poor_wound_healing": False, "in_hospital_death": False, "explanted": False,
        "explant_date": None, "followup_status": "followed", "followup_nrs": rint(r, 1, 5), "satisfied": True,
        "systemic_opioid_after": "lt_100", "death_date": None, "last_contact_date": lc, "os_event": 0,
        "respondent": pick(r, ["family", "patient"]), "dissatisfaction_reason": None,
        "implant_start_time": None, "implant_end_time": None,
    }
    for s in PAIN_SITES:
        p[f"pain_site_{s}"] = False
    p[f"pain_site_{pick(r, PAIN_SITES[:4])}"] = True
    if p["itt_count"] == 0:
        p["itt_drug"] = None
        p["itt_dose_mg"] = None
    return p


def no_pump_patient(rr: PatientRenderer, pid: str, r: np.random.Generator,
                    stay: tuple[dt.date, int] | None = None) -> list[Row]:
    """Another department's patient: admissions, diagnoses, measurements, orders; no pump.

    ``stay`` = (admission date, length of stay) fixes the first admission (used for
    stays that span a delivery date, so that a discharge arrives in a later delivery).
    """
    ids = rr.ids
    out: list[Row] = []
    first = dt.date(2019, 6, 1) + dt.timedelta(days=rint(r, 0, 1600))
    if stay is not None:
        first = stay[0] - dt.timedelta(days=rint(r, 5, 200))
    age = rint(r, 20, 90)
    p = {"patient_id": pid, "birth_date": dt.date(first.year - age, rint(r, 1, 12), rint(r, 1, 28)),
         "sex": pick(r, ["M", "F"])}
    phi(p, r)
    cancer = chance(r, 0.55)
    pain_clinic = chance(r, 0.12)
    rr._row(out, "patients", first, pid, patient_id=pid, name=p["_name"], id_number=p["_idno"], phone=p["_phone"],
            sex=p["sex"], birth_date=p["birth_date"],
            insurance_type=pick(r, ["employee", "resident", "self_pay", "commercial", "other"]))
    code = SITE_CODES[pick(r, list(SITE_CODES))] if cancer else None
    if cancer:
        rr.dx(out, p, None, first, code)
    d = first
    for k in range(rint(r, 1, 3)):
        d = d + dt.timedelta(days=rint(r, 5, 200))
        los = rint(r, 2, 14)
        if stay is not None and k == 0:
            d, los = stay
        elif d > CUTOFF - dt.timedelta(days=15):
            break
        e = d + dt.timedelta(days=los)
        aid = ids.next("admissions")
        dept = "疼痛科" if pain_clinic and k == 0 else pick(r, OTHER_DEPTS)
        admit = at(d, rint(r, 8, 16), pick(r, [0, 30]))
        dis = at(e, rint(r, 9, 15), 0)
        rr._row(out, "admissions", d, pid, admission_id=aid, patient_id=pid, admit_time=admit,
                discharge_time=dis, department=dept, arrival_mode=pick(r, ["walk", "walk", "wheelchair", "cart"]),
                discharge_status=pick(r, ["alive"] * 12 + ["dead", "transfer"]),
                total_charge=D(rint(r, 500000, 12000000)) / 100, self_pay=D(rint(r, 100000, 400000)) / 100)
        if cancer:
            rr.dx(out, p, aid, d, code)
            if chance(r, 0.3):
                rr.dx(out, p, aid, d, "G89.3", "癌性疼痛")
            if chance(r, 0.3):
                rr.dx(out, p, aid, d, "C79.5", "骨继发恶性肿瘤")
        else:
            c, n = pick(r, COMORBID + NONMALIGNANT_PAIN)
            rr.dx(out, p, aid, d, c, n)
        t = admit + dt.timedelta(hours=1)
        rr.meas(out, p, aid, t, "height", D(rint(r, 150, 185)), "cm")
        rr.meas(out, p, aid, t, "weight", D(rint(r, 400, 900)) / 10, "kg")
        if chance(r, 0.6):
            rr.score(out, p, aid, t, "nrs", rint(r, 0, 8))
        if cancer and chance(r, 0.6):
            rr.order(out, p, aid, pick(r, ["硫酸吗啡缓释片", "盐酸羟考酮缓释片"]), pick(r, ["10", "20", "30"]), "mg", "PO",
                     "q12h", "long_term", admit + dt.timedelta(hours=2), dis)
            rr.order(out, p, aid, "盐酸吗啡注射液", "10", "mg", "SC", "st", "temporary", admit + dt.timedelta(hours=5))
        if chance(r, 0.3):
            rr.order(out, p, aid, "盐酸曲马多缓释片", "100", "mg", "PO", "bid", "long_term", admit + dt.timedelta(hours=3))
        if chance(r, 0.05):
            rr.order(out, p, aid, "地佐辛注射液", "5", "mg", "IV", "st", "temporary", admit + dt.timedelta(hours=4))
        for i in r.permutation(len(UNRELATED))[: rint(r, 1, 4)]:
            name, dose, unit, route, freq, kind = UNRELATED[int(i)]
            rr.order(out, p, aid, name, dose, unit, route, freq, kind, admit + dt.timedelta(hours=rint(r, 1, 20)),
                     dis if kind == "long_term" else None)
        if pain_clinic and k == 0:
            # a screening trial that failed: no pump
            t = admit + dt.timedelta(hours=22)
            rr.trial(out, p, t, "morphine", D("0.2"), "negative")
            rr._row(out, "procedures", d, pid, procedure_id=ids.next("procedures"), patient_id=pid, admission_id=aid,
                    procedure_code="03.9100", procedure_name="鞘内注射（试验性镇痛）", start_time=t,
                    end_time=t + dt.timedelta(minutes=20))
        elif chance(r, 0.08):
            rr._row(out, "procedures", d, pid, procedure_id=ids.next("procedures"), patient_id=pid, admission_id=aid,
                    procedure_code="03.9600", procedure_name="射频热凝术", start_time=admit + dt.timedelta(hours=20),
                    end_time=admit + dt.timedelta(hours=21))
        d = e
    return out


def build_noncohort(rr: PatientRenderer, r: np.random.Generator, taken: set[str], n_total: int | None,
                    n_cohort: int) -> tuple[list[Row], list[dict]]:
    """All non-cohort patients: (rows, truth records)."""
    rows: list[Row] = []
    truth: list[dict] = []

    def pump(category, step, implant, opts, note, malignant=True):
        pid = new_pid(r, taken)
        p = pseudo_latent(r, pid, implant, rr.ids, malignant=malignant)
        if "sex" in opts.drop:
            p["sex"] = None
        rows.extend(rr.render(p, opts))
        truth.append({"patient_id": pid, "category": category, "expected_step": step,
                      "implant_date": implant.isoformat(), "description": note})

    def window_date(lo=dt.date(2021, 1, 10), hi=dt.date(2023, 12, 1)):
        return lo + dt.timedelta(days=rint(r, 0, (hi - lo).days))

    for _ in range(8):
        pump("nonmalignant_pump", "nonmalignant_pain", window_date(), Opts(indication="nonmalignant_pain",
             malignant=False, category="nonmalignant"), "pump for non-malignant pain, no C-code", malignant=False)
    for _ in range(3):
        pump("replacement_only", "no_first_implant", window_date(), Opts(is_replacement=True, category="replacement"),
             "the only implant in the extract is a pump replacement (first pump implanted elsewhere)")
    for _ in range(6):
        pump("implant_2020", "implant_outside_window", window_date(dt.date(2020, 1, 15), dt.date(2020, 12, 10)),
             Opts(category="outside"), "cancer-pain first implant in 2020")
    for _ in range(4):
        pump("implant_2024", "implant_outside_window", window_date(dt.date(2024, 1, 8), dt.date(2024, 2, 20)),
             Opts(category="outside"), "cancer-pain first implant in 2024")
    for drop, var in MISSING_KINDS:
        pump("missing_baseline", f"missing_data:{var}", window_date(), Opts(drop=(drop,), category="missing"),
             f"cancer-pain first implant in the window without {var}")
    n_pump = len(truth)
    n_np = 260 if n_total is None else max(0, n_total - n_cohort - n_pump)
    # long stays across the delivery dates used for K deliveries (2024-03-06 and a mid-2022 date)
    stays = [(dt.date(2024, 3, 1), 11), (dt.date(2024, 2, 27), 14), (dt.date(2022, 6, 20), 30),
             (dt.date(2021, 12, 20), 25), (dt.date(2022, 12, 20), 25)]
    for i in range(n_np):
        pid = new_pid(r, taken)
        rows.extend(no_pump_patient(rr, pid, r, stays[i] if i < len(stays) else None))
        truth.append({"patient_id": pid, "category": "no_pump", "expected_step": "no_implant",
                      "implant_date": "", "description": "patient of another department, no pump implant"})
    return rows, truth
