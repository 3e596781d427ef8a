"""Quirks mode: ordinary clinical recording errors on cohort patients, logged exactly.

``idds synth --quirks`` writes the calibrated paper deliveries and then, for a few of the
96 included patients, alters their EMR rows the way a real hospital gets them wrong: a
self-pay a fraction of a yuan above the total, a charge typed in 万元, a birth year typed
with the wrong decade, a weight charted with the unit 斤, a closure time dated the next
day, a cephalad catheter recorded as caudad... Each quirk is placed so that exactly the
intended blocking check(s) of ``expectations/catalogue.yml`` fail for that one patient
inside the analytic cohort (``marts.cohort_idds``), that the patient stays in the built
cohort, and that no other check reports an in-cohort failure. Every blocking check whose
failing rows can reach the cohort gets exactly one such violation.

Three contract quirks add a record of a cohort patient that the ingest contract
quarantines (an unknown enumeration label); the file's ``contract_sets_aside`` columns
are then set aside for that patient.

``truth/quirks.csv`` lists, for every quirk, one row per (patient, check, variable) the
pipeline must set aside: the check's ``sets_aside`` columns of the catalogue (or
``patient``), for contract quirks the file's ``contract_sets_aside`` columns with the
check id the quarantine row names first. Which checks a quirk fails is the generator's
own claim (the end-to-end test verifies it against a real run); what a failing check
sets aside is read from the catalogue, the pipeline's one home of that map.

At most two patients get a primary variable (os_months, os_event, baseline_nrs,
followup_nrs) set aside, so that no run-level threshold fires: the death date typed
before the implant (R-DT-04 with gx.cohort_idds.os_days.non_negative) and the explanted
patient, who carries two quirks (R-DT-05 and R-FU-01). One more patient is set aside as a
whole (R-ID-03, ``patient``): still in the built cohort, removed by the set-aside step.

Blocking checks with ``sets_aside`` that no quirk can reach in the cohort (and why):
see :data:`UNREACHABLE`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from .render import CUTOFF, D, Row

QUIRKS_FILE = "quirks.csv"
QUIRK_COLUMNS = ["patient_id", "check_id", "variable", "description"]
PATIENT = "patient"

# Blocking checks with `sets_aside` in expectations/catalogue.yml that no quirk can make
# fail inside the analytic cohort, each with the reason (one line each).
UNREACHABLE: dict[str, str] = {
    "R-ID-01": "no test implements it (no data-tests/r_id_01_*.sql): it never reports a result",
    "R-ID-02": "no test implements it (no data-tests/r_id_02_*.sql): it never reports a result",
    "R-ID-04": "pre-empted by cohort inclusion: an included patient needs a primary malignancy code "
               "(C00-C76, C80-C97), which always matches ^C[0-9]{2}",
    "R-DT-01": "pre-empted by cohort inclusion: an implant outside 2021-2023 leaves at implant_outside_window",
    "R-DT-02": "its SQL reports only `false as in_cohort` (implants without a containing admission)",
    "R-DM-02": "no test implements it (no data-tests/r_dm_02_*.sql): it never reports a result",
    "R-DM-05": "pre-empted at ingest: raw.measurements.value.range quarantines an ADL outside 0-100 "
               "(same parser), and the not-a-multiple-of-5 branch reports `false as in_cohort`",
    "R-PN-01": "pre-empted at ingest: raw.measurements.value.range (NRS 0-10) and raw.followups.nrs "
               "(integer 0-10) quarantine every out-of-range NRS; the non-integer branch is `false as in_cohort`",
    "R-PN-03": "no test implements it (no data-tests/r_pn_03_*.sql): it never reports a result",
    "R-LS-01": "the index admission contains the implant (admission <= implant <= discharge), so a cohort "
               "stay never ends before it starts; the other branch is `false as in_cohort`",
    "R-FU-02": "no test implements it (no data-tests/r_fu_02_*.sql): it never reports a result",
    "R-CD-01": "no test implements it (no data-tests/r_cd_01_*.sql): it never reports a result",
    "gx.cohort_idds.sex.accepted": "sex is a mapped enumeration: an unknown code is quarantined at ingest "
                                   "(raw.patients.sex.accepted) and a missing one excludes (missing_data:sex)",
    "gx.cohort_idds.os_days.complete": "os_days is computed from the non-null implant date and LEAST(), which "
                                       "ignores NULL, against the data cut-off: never null in the cohort",
    "gx.cohort_idds.os_event.accepted": "os_event is a CASE that yields only 0 or 1",
    "gx.cohort_idds.baseline_nrs.range": "pre-empted at ingest: raw.measurements.value.range quarantines an "
                                         "NRS outside 0-10 (same parser)",
    "gx.cohort_idds.implant_date.complete": "pre-empted by cohort inclusion: an implant without a date is "
                                            "never an index implant (no_first_implant)",
    "gx.cohort_idds.followup_status.complete": "followup_status is a CASE with an ELSE branch: never null",
}

# contract quirks: (file, column, delivered text, check id)
CONTRACT_QUIRKS = [
    ("medication_orders", "route", "鼻饲", "raw.medication_orders.route.accepted"),
    ("treatment_history", "treatment_type", "中医治疗", "raw.treatment_history.treatment_type.accepted"),
    ("adverse_events", "event_type", "皮疹", "raw.adverse_events.event_type.accepted"),
]

KEYS = {"medication_orders": "order_id", "treatment_history": "history_id", "adverse_events": "event_id"}


@cache
def catalogue() -> dict:
    """expectations/catalogue.yml (the pipeline's map of what a failing check sets aside)."""
    text = resources.files("expectations").joinpath("catalogue.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def set_aside_of(check_id: str) -> list[str]:
    """Variables a cohort violation of ``check_id`` sets aside (``['patient']`` or columns)."""
    cat = catalogue()
    if check_id.startswith("raw."):
        target = (cat.get("contract_sets_aside") or {}).get(check_id.split(".")[1])
    else:
        target = (cat.get("checks") or {}).get(check_id, {}).get("sets_aside")
    if not target:
        return []
    return [PATIENT] if target == PATIENT else list(target)


# the quirks, in the order they are placed (scarce patients first), with the checks each fails
QUIRK_PLAN: list[tuple[str, list[str]]] = [
    ("explant_after_cutoff", ["R-DT-05"]),
    ("explanted_satisfaction", ["R-FU-01"]),
    ("postmortem_explant_before_implant", ["R-DT-06"]),
    ("tip_s2", ["R-OR-03"]),
    ("death_before_implant", ["R-DT-04", "gx.cohort_idds.os_days.non_negative"]),
    ("self_pay_above_total", ["R-CS-01"]),
    ("charges_in_wan", ["R-CS-02"]),
    ("birth_decade_typo", ["R-DM-01", "gx.cohort_idds.age_years.range"]),
    ("weight_plus_100", ["R-DM-03"]),
    ("weight_unit_jin", ["R-DM-04", "gx.cohort_idds.bmi.range"]),
    ("cancer_dx_after_implant", ["R-DT-03"]),
    ("stopped_for_non_user", ["R-FU-04"]),
    ("replacement_name_on_first_implant", ["R-ID-03"]),
    ("trial_drug_missing", ["R-IT-01"]),
    ("trial_ug_as_mg", ["R-IT-02"]),
    ("admission_three_months_early", ["R-LS-02"]),
    ("oxycodone_im", ["R-OP-01"]),
    ("morphine_dose_x100", ["R-OP-05", "gx.cohort_idds.baseline_ome_mg_per_day.range"]),
    ("closure_next_day", ["R-OR-01", "gx.fct_implants.surgery_duration_hours.range"]),
    ("insertion_not_adjacent", ["R-OR-02"]),
    ("direction_flipped", ["R-OR-04"]),
    ("no_pain_site", ["R-PN-04"]),
    ("pump_ug_as_mg", ["R-PU-03"]),
] + [(f"contract_{stem}", [check]) for stem, _, _, check in CONTRACT_QUIRKS]


class QuirkError(RuntimeError):
    """No cohort patient fits a quirk (the latent cohort lacks the needed case)."""


@dataclass
class Quirk:
    name: str
    patient_id: str
    checks: list[str]
    description: str


@dataclass
class Override:
    stem: str
    key: str
    column: str
    text: str


@dataclass
class QuirkLog:
    quirks: list[Quirk] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per (patient, check, variable) the pipeline must set aside."""
        out = []
        for q in self.quirks:
            for check in q.checks:
                for variable in set_aside_of(check):
                    out.append({"patient_id": q.patient_id, "check_id": check, "variable": variable,
                                "description": q.description})
        out.sort(key=lambda r: (r["check_id"], r["patient_id"], set_aside_of(r["check_id"]).index(r["variable"])))
        return out

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, QUIRK_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in self.rows():
            w.writerow(row)
        return buf.getvalue()


# ---------------------------------------------------------------------------
# small date and number helpers
# ---------------------------------------------------------------------------

def shift_years(d, years: int):
    """Same month and day ``years`` later (Feb 29 -> Feb 28)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def months_back(t: dt.datetime, months: int) -> dt.datetime:
    y, m = t.year, t.month - months
    while m < 1:
        y, m = y - 1, m + 12
    return t.replace(year=y, month=m, day=min(t.day, 28))


def bmi(weight_kg, height_cm) -> float:
    return float(weight_kg) / (float(height_cm) / 100) ** 2


def fmt(x) -> str:
    return format(x.normalize(), "f") if isinstance(x, Decimal) else str(x)


def money(x: Decimal) -> str:
    return format(x.quantize(D("0.01")), "f")


PER_DAY = {"qd": 1, "qn": 1, "bid": 2, "q12h": 2, "tid": 3, "q8h": 3, "qid": 4, "q6h": 4, "q4h": 6}
FACTOR = [("羟考酮", D("1.5")), ("Oxycodone", D("1.5")), ("吗啡", D(1)), ("Morphine", D(1))]


# ---------------------------------------------------------------------------
# the injector
# ---------------------------------------------------------------------------

class Injector:
    def __init__(self, bundle, r: np.random.Generator):
        self.b = bundle
        self.lat = {p["patient_id"]: p for p in bundle.records}
        self.by_pid: dict[str, list[Row]] = {}
        for row in bundle.rows:
            self.by_pid.setdefault(row.pid, []).append(row)
        revision = {row.pid for row in bundle.rows if row.stem == "idds_implants" and row.tag == "revision"}
        order = [bundle.records[int(i)]["patient_id"] for i in r.permutation(len(bundle.records))]
        self.order = [pid for pid in order if pid not in revision]
        self.used: set[str] = set()
        self.log = QuirkLog()

    # -- lookups ----------------------------------------------------------------
    def rows(self, pid: str, stem: str, pred=lambda row: True) -> list[Row]:
        return [row for row in self.by_pid.get(pid, []) if row.stem == stem and pred(row)]

    def index_admission(self, pid: str) -> Row:
        return self.rows(pid, "admissions", lambda row: row.tag == "index")[0]

    def implant(self, pid: str) -> Row:
        iid = self.lat[pid]["implant_id"]
        return self.rows(pid, "idds_implants", lambda row: row.v["implant_id"] == iid)[0]

    def implant_procedure(self, pid: str) -> Row:
        proc = self.implant(pid).v["procedure_id"]
        return self.rows(pid, "procedures", lambda row: row.v["procedure_id"] == proc)[0]

    def weight_row(self, pid: str) -> Row | None:
        adm = self.lat[pid]["admission_id"]
        rows = self.rows(pid, "measurements", lambda row: row.v["item"] == "weight" and row.tag == ""
                         and row.v["admission_id"] == adm)
        return rows[0] if len(rows) == 1 else None

    def reached_after_discharge(self, pid: str) -> list[Row]:
        dis = self.lat[pid]["discharge_date"]
        rows = self.rows(pid, "followups", lambda row: row.v["outcome"] == "reached" and row.v["contact_date"] > dis)
        return sorted(rows, key=lambda row: row.v["contact_date"])

    def last_trial(self, pid: str) -> Row | None:
        start = self.implant_procedure(pid).v["start_time"]
        rows = [row for row in self.rows(pid, "itt_trials")
                if start - dt.timedelta(days=90) <= row.v["trial_time"] < start]
        return max(rows, key=lambda row: row.v["trial_time"]) if rows else None

    # -- placement ----------------------------------------------------------------
    def choose(self, name: str, pred) -> tuple[str, dict]:
        for pid in self.order:
            if pid in self.used:
                continue
            p = self.lat[pid]
            try:
                ok = pred(pid, p)
            except (KeyError, TypeError, IndexError):
                ok = False
            if ok:
                self.used.add(pid)
                return pid, p
        raise QuirkError(f"no cohort patient fits the quirk {name!r}")

    def note(self, name: str, pid: str, description: str) -> None:
        checks = dict(QUIRK_PLAN)[name]
        self.log.quirks.append(Quirk(name, pid, checks, description))

    def add_row(self, stem: str, pid: str, ship: dt.date, **v) -> Row:
        row = Row(stem, v, ship, {}, pid, "quirk")
        self.b.rows.append(row)
        self.by_pid.setdefault(pid, []).append(row)
        return row

    # -- the quirks ---------------------------------------------------------------
    def run(self) -> QuirkLog:
        for name, _ in QUIRK_PLAN:
            getattr(self, name if not name.startswith("contract_") else "contract")(name)
        return self.log

    def explant_after_cutoff(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("explant_date") is not None
                             and p.get("followup_status") == "explanted"
                             and bool(self.reached_after_discharge(pid)))
        row = self.implant(pid)
        true = row.v["explant_date"]
        typed = true
        while typed <= CUTOFF:
            typed = shift_years(typed, 1)
        row.v["explant_date"] = typed
        self.note(name, pid, f"explant date typed {typed} for {true}: after the {CUTOFF} data cut-off")
        self.explanted = pid

    def explanted_satisfaction(self, name):
        # the same (explanted) patient: a second quirk, so that at most two patients get a
        # primary variable set aside
        pid = self.explanted
        row = self.reached_after_discharge(pid)[-1]
        row.v["satisfied"] = "yes"
        self.note(name, pid, f"explanted patient's follow-up call on {row.v['contact_date']} records "
                             "'satisfied' (only followed patients carry follow-up answers)")

    def postmortem_explant_before_implant(self, name):
        pid, p = self.choose(name, lambda pid, p: bool(p.get("in_hospital_death"))
                             and p.get("explant_date") is None)
        row = self.implant(pid)
        dis = p["discharge_date"]
        typed = shift_years(dis, -1)
        row.v["explant_date"] = typed
        row.v["explant_reason"] = "患者死亡后取出鞘内泵"
        row.pending = dict(row.pending, explant_date=dis, explant_reason=dis)
        self.note(name, pid, f"pump removed after the in-hospital death on {dis}, explant date typed {typed} "
                             f"(before the implant on {p['implant_date']})")

    def tip_s2(self, name):
        pid, p = self.choose(name, lambda pid, p: not p["catheter_cephalad"] and p.get("catheter_tip_level"))
        row = self.implant(pid)
        true = p["catheter_tip_level"]
        row.v["catheter_tip_level"] = "S2"
        self.note(name, pid, f"catheter tip recorded S2 (sacral) for {true} (caudad catheter)")

    def death_before_implant(self, name):
        def death_row(pid):
            rows = self.rows(pid, "followups", lambda row: row.v.get("death_date") is not None)
            return rows[0] if len(rows) == 1 else None

        def ok(pid, p):
            dd = p.get("death_date")
            return (p.get("followup_status") == "followed" and p.get("os_event") == 1 and dd is not None
                    and death_row(pid) is not None and shift_years(dd, -1) < p["implant_date"])
        pid, p = self.choose(name, ok)
        row = death_row(pid)
        true = row.v["death_date"]
        typed = shift_years(true, -1)
        row.v["death_date"] = typed
        self.note(name, pid, f"death date typed {typed} for {true}: before the implant on {p['implant_date']} "
                             "(negative survival time)")

    def self_pay_above_total(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("insurance_type") != "self_pay"
                             and self.index_admission(pid).v["total_charge"] is not None
                             and self.index_admission(pid).v["self_pay"] is not None)
        row = self.index_admission(pid)
        total, true = row.v["total_charge"], row.v["self_pay"]
        row.v["self_pay"] = total + D("0.30")
        self.note(name, pid, f"self-pay {money(total + D('0.30'))} CNY entered 0.30 CNY above the total charge "
                             f"{money(total)} CNY (true self-pay {money(true)})")

    def charges_in_wan(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("insurance_type") != "self_pay"
                             and self.index_admission(pid).v["total_charge"] is not None
                             and self.index_admission(pid).v["self_pay"] is not None)
        row = self.index_admission(pid)
        total, pay = row.v["total_charge"], row.v["self_pay"]
        wt, wp = (total / 10000).quantize(D("0.01")), (pay / 10000).quantize(D("0.01"))
        row.v["total_charge"], row.v["self_pay"] = wt, wp
        self.note(name, pid, f"charges entered in 万元: total {money(wt)} and self-pay {money(wp)} "
                             f"for {money(total)} and {money(pay)} CNY")

    def birth_decade_typo(self, name):
        pid, p = self.choose(name, lambda pid, p: 61 <= p["age_years"] <= 70)
        row = self.rows(pid, "patients")[0]
        true = row.v["birth_date"]
        typed = shift_years(true, -40)
        row.v["birth_date"] = typed
        self.note(name, pid, f"birth year typed {typed.year} for {true.year}: age {p['age_years'] + 40} "
                             "at the implant")

    def weight_plus_100(self, name):
        def ok(pid, p):
            w, h = p["weight_kg"], p["height_cm"]
            return self.weight_row(pid) is not None and 50 < w <= 99 and bmi(w + 100, h) <= 58
        pid, p = self.choose(name, ok)
        row = self.weight_row(pid)
        w = p["weight_kg"]
        row.v["value"], row.v["unit"] = w + 100, "kg"
        self.note(name, pid, f"weight typed {fmt(w + 100)} kg for {fmt(w)} kg (last weight before the implant; "
                             f"BMI {bmi(w + 100, p['height_cm']):.1f} stays within 10-60)")

    def weight_unit_jin(self, name):
        def ok(pid, p):
            w, h = p["weight_kg"], p["height_cm"]
            return self.weight_row(pid) is not None and w >= 50 and bmi(w / 2, h) <= 9.8
        pid, p = self.choose(name, ok)
        row = self.weight_row(pid)
        w = p["weight_kg"]
        row.v["value"], row.v["unit"] = w, "斤"
        self.note(name, pid, f"weight {fmt(w)} kg charted with the unit 斤 (read as {fmt(w / 2)} kg): "
                             f"BMI {bmi(w / 2, p['height_cm']):.1f}")

    def cancer_dx_after_implant(self, name):
        def ok(pid, p):
            adm = p["admission_id"]
            cancer = self.rows(pid, "diagnoses", lambda row: row.tag in ("primary", "repeat"))
            return ((p["discharge_date"] - p["implant_date"]).days >= 2 and len(cancer) == 2
                    and all(row.tag == "primary" or row.v["admission_id"] == adm for row in cancer))
        pid, p = self.choose(name, ok)
        k = min(3, (p["discharge_date"] - p["implant_date"]).days)
        typed = p["implant_date"] + dt.timedelta(days=k)
        for row in self.rows(pid, "diagnoses", lambda row: row.tag in ("primary", "repeat")):
            row.v["diagnosis_date"] = typed
            row.ship = max(row.ship, typed)
        self.note(name, pid, f"cancer diagnosis ({p['cancer_icd10']}) dated {typed}, {k} days after the implant on "
                             f"{p['implant_date']} but within the admission (true {p['cancer_dx_date']})")

    def stopped_for_non_user(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("followup_status") == "followed"
                             and not p["systemic_opioid_user"] and p.get("systemic_opioid_after") != "stopped"
                             and bool(self.reached_after_discharge(pid)))
        rows = self.reached_after_discharge(pid)
        carrying = [row for row in rows if row.v.get("systemic_opioid") is not None]
        row = carrying[-1] if carrying else rows[-1]
        row.v["systemic_opioid"] = "stopped"
        self.note(name, pid, f"follow-up call on {row.v['contact_date']} records 'stopped systemic opioids' "
                             "for a patient without opioids at baseline")

    def replacement_name_on_first_implant(self, name):
        pid, p = self.choose(name, lambda pid, p: True)
        row = self.implant_procedure(pid)
        true = row.v["procedure_name"]
        row.v["procedure_name"] = "鞘内药物输注系统更换术"
        self.note(name, pid, f"first implant's operation recorded under the replacement name "
                             f"'鞘内药物输注系统更换术' for '{true}' (is_replacement = no)")

    def trial_drug_missing(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("itt_count") == 1 and p.get("itt_drug") is not None
                             and self.last_trial(pid) is not None
                             and self.last_trial(pid).v["drug"] == p["itt_drug"])
        row = self.last_trial(pid)
        row.v["drug"] = None
        self.note(name, pid, f"screening trial on {row.v['trial_time']:%Y-%m-%d} recorded without its drug "
                             f"({p['itt_drug']})")

    def trial_ug_as_mg(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("itt_drug") == "hydromorphone"
                             and p.get("itt_dose_mg") is not None and self.last_trial(pid) is not None
                             and self.last_trial(pid).v["drug"] == "hydromorphone"
                             and p["itt_dose_mg"] * 1000 <= 1000)
        row = self.last_trial(pid)
        ug = p["itt_dose_mg"] * 1000
        row.v["dose"], row.v["dose_unit"] = ug, "mg"
        self.note(name, pid, f"hydromorphone trial bolus {fmt(ug)} μg recorded as {fmt(ug)} mg")

    def admission_three_months_early(self, name):
        def ok(pid, p):
            adm = self.index_admission(pid)
            early = months_back(adm.v["admit_time"], 3)
            history = self.rows(pid, "treatment_history")
            dates = [h.v["start_date"][0] if isinstance(h.v["start_date"], tuple) else h.v["start_date"]
                     for h in history]
            return (not p["systemic_opioid_user"] and (p.get("n_adjuvant_drugs") or 0) == 0
                    and (p["discharge_date"] - early.date()).days > 91
                    and all(d is None or d < early.date() - dt.timedelta(days=31) for d in dates))
        pid, p = self.choose(name, ok)
        row = self.index_admission(pid)
        true = row.v["admit_time"]
        typed = months_back(true, 3)
        row.v["admit_time"] = typed
        los = (p["discharge_date"] - typed.date()).days
        self.note(name, pid, f"admission date typed {typed:%Y-%m-%d} for {true:%Y-%m-%d}: a stay of {los} days")

    def oxycodone_im(self, name):
        pid, p = self.choose(name, lambda pid, p: bool(p["systemic_opioid_user"]))
        adm = self.index_admission(pid)
        t = adm.v["admit_time"] + dt.timedelta(hours=3)
        self.add_row("medication_orders", pid, t.date(), order_id=self.b.ids.next("medication_orders"),
                     patient_id=pid, admission_id=p["admission_id"], drug_name="盐酸羟考酮注射液", dose=D(5),
                     dose_unit="mg", route="IM", frequency="st", order_kind="temporary", start_time=t,
                     end_time=None)
        self.note(name, pid, f"oxycodone injection 5 mg IM on {t:%Y-%m-%d %H:%M}, in the baseline window: "
                             "no conversion factor for oxycodone IM")

    def morphine_dose_x100(self, name):
        adm_of = {}

        def candidates(pid, p):
            out = []
            for row in self.rows(pid, "medication_orders", lambda row: row.tag == "" and row.v["order_kind"]
                                 == "long_term" and row.v["route"] == "PO" and row.v["dose_unit"] == "mg"
                                 and row.v["admission_id"] == p["admission_id"]):
                factor = next((f for k, f in FACTOR if k in row.v["drug_name"]), None)
                per_day = PER_DAY.get(row.v["frequency"])
                if factor is None or per_day is None:
                    continue
                new = p["baseline_ome_mg_per_day"] + row.v["dose"] * 99 * per_day * factor
                if D(5200) < new <= D(90000):
                    out.append((row, new))
            return out

        def ok(pid, p):
            c = candidates(pid, p)
            adm_of[pid] = c
            return bool(p["systemic_opioid_user"]) and bool(c)
        pid, p = self.choose(name, ok)
        row, new = adm_of[pid][0]
        true = row.v["dose"]
        row.v["dose"] = true * 100
        self.note(name, pid, f"{row.v['drug_name']} {fmt(true)} mg {row.v['frequency']} typed {fmt(true * 100)} mg: "
                             f"baseline OME {fmt(new)} mg/day (true {fmt(p['baseline_ome_mg_per_day'])})")

    def closure_next_day(self, name):
        pid, p = self.choose(name, lambda pid, p: True)
        row = self.implant_procedure(pid)
        true = row.v["end_time"]
        row.v["end_time"] = true + dt.timedelta(days=1)
        hours = (row.v["end_time"] - row.v["start_time"]).total_seconds() / 3600
        self.note(name, pid, f"closure time dated the next day ({row.v['end_time']:%Y-%m-%d %H:%M} for "
                             f"{true:%Y-%m-%d %H:%M}): surgery of {hours:.1f} h")

    def insertion_not_adjacent(self, name):
        pid, p = self.choose(name, lambda pid, p: p.get("insertion_level") in ("L2-L3", "L3-L4"))
        row = self.implant(pid)
        true = p["insertion_level"]
        upper = true.split("-")[0]
        typed = f"{upper}-L{int(upper[1:]) + 2}"
        row.v["insertion_level"] = typed
        self.note(name, pid, f"insertion level recorded {typed} (not an adjacent interspace) for {true}")

    def direction_flipped(self, name):
        pid, p = self.choose(name, lambda pid, p: bool(p["catheter_cephalad"]) and p.get("catheter_tip_level")
                             and p.get("insertion_level"))
        row = self.implant(pid)
        row.v["catheter_direction"] = "caudad"
        self.note(name, pid, f"catheter direction recorded caudad for a cephalad catheter (tip "
                             f"{p['catheter_tip_level']} above the {p['insertion_level']} insertion)")

    def no_pain_site(self, name):
        pid, p = self.choose(name, lambda pid, p: bool(self.rows(pid, "measurements",
                                                                   lambda row: row.v["item"] == "pain_site")))
        drop = {id(row) for row in self.rows(pid, "measurements", lambda row: row.v["item"] == "pain_site")}
        self.b.rows[:] = [row for row in self.b.rows if id(row) not in drop]
        self.by_pid[pid] = [row for row in self.by_pid[pid] if id(row) not in drop]
        sites = [s for s in ("lumbosacral", "abdomen", "back", "lower_limb", "perineum", "chest", "head_neck",
                             "upper_limb") if p.get(f"pain_site_{s}")]
        self.note(name, pid, f"no pain site charted during the index admission (true: {', '.join(sites)})")

    def pump_ug_as_mg(self, name):
        def first(pid, p):
            rows = [row for row in self.b.rows if row.stem == "pump_programs" and row.pid == pid
                    and row.v["implant_id"] == p["implant_id"]]
            return min(rows, key=lambda row: row.v["programmed_at"]) if rows else None
        pid, p = self.choose(name, lambda pid, p: p.get("idds_drug") == "morphine"
                             and p.get("initial_daily_dose_mg") is not None and first(pid, p) is not None
                             and D("0.021") <= p["initial_daily_dose_mg"] <= D(100))
        row = first(pid, p)
        ug = p["initial_daily_dose_mg"] * 1000
        row.v["daily_dose"], row.v["daily_dose_unit"] = ug, "mg/d"
        self.note(name, pid, f"initial pump dose morphine {fmt(ug)} μg/d recorded as {fmt(ug)} mg/d")

    def contract(self, name):
        stem = name[len("contract_"):]
        _, column, text, _ = next(c for c in CONTRACT_QUIRKS if c[0] == stem)
        pid, p = self.choose(name, lambda pid, p: True)
        adm = self.index_admission(pid)
        admit = adm.v["admit_time"]
        key = self.b.ids.next(stem)
        if stem == "medication_orders":
            t = admit + dt.timedelta(hours=30)
            self.add_row(stem, pid, t.date(), order_id=key, patient_id=pid, admission_id=p["admission_id"],
                         drug_name="枸橼酸莫沙必利片", dose=D(5), dose_unit="mg", route="PO", frequency="tid",
                         order_kind="long_term", start_time=t, end_time=None)
            what = f"an extra order (mosapride 5 mg tid) given by nasogastric tube, route written '{text}'"
        elif stem == "treatment_history":
            d = p["admission_date"] - dt.timedelta(days=60)
            self.add_row(stem, pid, p["admission_date"], history_id=key, patient_id=pid, treatment_type="surgery",
                         start_date=d, note="中药汤剂调理")
            what = f"an extra treatment-history record of {d} whose type is written '{text}' (traditional medicine)"
        else:
            d = p["implant_date"] + dt.timedelta(days=min(1, (p["discharge_date"] - p["implant_date"]).days))
            self.add_row(stem, pid, d, event_id=key, patient_id=pid, admission_id=p["admission_id"], event_date=d,
                         event_type="fever", note="术后皮疹，予抗过敏治疗")
            what = f"an extra adverse event of {d} whose type is written '{text}' (rash)"
        self.log.overrides.append(Override(stem, key, column, text))
        self.note(name, pid, f"{what}: the record is quarantined at ingest ({key})")


def inject_quirks(bundle, r: np.random.Generator) -> QuirkLog:
    """Alter the rendered rows of chosen cohort patients (before the delivery split)."""
    return Injector(bundle, r).run()


def apply_overrides(plan, log: QuirkLog) -> None:
    """Write the contract quirks' raw texts into every delivered version of their records."""
    for o in log.overrides:
        for recs in plan.recs:
            for rec in recs[o.stem]:
                if rec.v is not None and rec.v.get(KEYS[o.stem]) == o.key:
                    rec.override[o.column] = o.text


def write_quirks(truth: Path, log: QuirkLog) -> None:
    truth.mkdir(parents=True, exist_ok=True)
    (truth / QUIRKS_FILE).write_text(log.csv_text(), encoding="utf-8")
