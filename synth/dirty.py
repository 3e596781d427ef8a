"""Dirty mode: inject the defects of study_reference.md §3.8 and the contract's bad rows.

Every defect is logged (``truth/defects.csv``) with the delivery, the file as
delivered, the physical line where the record starts (header = line 1), the record
key, the rule id and the expected disposition. Defects are placed so that the 96
included patients keep their recoverable values unless the description says what a
correct pipeline should do (correct a unit, ignore a flagged decoy, count a
duplicate order once):

* contract rules (``raw.<file>.<column>.<check>``) sit on extra rows of non-cohort
  patients (quarantining them changes nothing) or are exact duplicates;
* clinical rules (``R-*``) sit on cohort rows a correct pipeline repairs or ignores,
  or on extra patients whose expected attrition step is recorded in the truth.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from .deliveries import Bundle, Plan, Rec
from .noncohort import new_pid, pseudo_latent
from .render import CUTOFF, D, Opts, PatientRenderer, Row, at
from .variants import SCHEMA, FileStyle


class Injector:
    def __init__(self, plan: Plan, bundle: Bundle, styles: dict[str, FileStyle], r: np.random.Generator):
        self.plan, self.b, self.styles, self.r = plan, bundle, styles, r
        self.last = len(plan.ids) - 1
        self.no_pump = [t["patient_id"] for t in bundle.noncohort if t["category"] == "no_pump"]
        self.by_pid: dict[str, list[Row]] = {}
        for row in bundle.rows:
            self.by_pid.setdefault(row.pid, []).append(row)
        self.used_pids: set[str] = set()

    # -- placement ------------------------------------------------------------
    def k_for(self, stem: str) -> int:
        rs = self.plan.resent
        if rs and rs["stem"] == stem and self.plan.ids.index(rs["delivery"]) == self.last:
            return self.last - 1
        return self.last

    def final_rec(self, stem: str, key: str) -> tuple[int, Rec] | None:
        kcol = SCHEMA[stem][1]
        for k in range(len(self.plan.ids) - 1, -1, -1):
            rs = self.plan.resent
            if rs and rs["stem"] == stem and self.plan.ids[k] == rs["delivery"]:
                continue
            for rec in self.plan.recs[k][stem]:
                if rec.v is not None and rec.v.get(kcol) == key:
                    return k, rec
        return None

    def add(self, stem: str, rec: Rec, k: int | None = None) -> int:
        k = self.k_for(stem) if k is None else k
        rs = self.plan.resent
        if rs and rs["stem"] == stem and self.plan.ids[k] == rs["delivery"]:
            k -= 1
        self.plan.recs[k][stem].append(rec)
        return k

    def log(self, rec: Rec, k: int, rule: str, disp: str, desc: str, key: str, dup: bool = False):
        d = {"delivery_id": self.plan.ids[k], "stem": rec.stem, "record_key": key, "rule_id": rule,
             "expected_disposition": disp, "description": desc}
        (rec.dup_defects if dup else rec.defects).append(d)

    def new_key(self, stem: str) -> str:
        return self.b.ids.next(stem)

    def np_rows(self, stem: str, pred=lambda row: True) -> list[Row]:
        """Rows of no-pump non-cohort patients (each patient used once)."""
        for pid in self.no_pump:
            if pid in self.used_pids:
                continue
            rows = [row for row in self.by_pid.get(pid, []) if row.stem == stem and pred(row)]
            if rows:
                self.used_pids.add(pid)
                return rows
        raise RuntimeError(f"no spare non-cohort row in {stem}")

    def extra_copy(self, stem: str, pred=lambda row: True) -> tuple[Rec, str]:
        row = self.np_rows(stem, pred)[0]
        v = dict(row.v)
        key = self.new_key(stem)
        v[SCHEMA[stem][1]] = key
        return Rec(stem, v), key

    def cohort_rows(self, stem: str, pred) -> list[Row]:
        out = [row for row in self.b.rows if row.stem == stem and row.pid in self.b.cohort_ids and pred(row)]
        return out

    # -- the defects -----------------------------------------------------------
    def run(self):
        r = self.r
        # ---- contract: malformed records ------------------------------------------
        rec, key = self.extra_copy("medication_orders")
        rec.post = lambda f, cols: f + ["多余字段"]
        k = self.add("medication_orders", rec)
        self.log(rec, k, "raw.medication_orders.record.malformed", "quarantined",
                 "record with one field too many", key)

        rec, key = self.extra_copy("measurements")
        rec.post = lambda f, cols: [x for x, c in zip(f, cols, strict=True) if c not in ("value", "unit")]
        k = self.add("measurements", rec)
        self.log(rec, k, "raw.measurements.record.malformed", "quarantined", "record with two fields too few", key)

        rec, key = self.extra_copy("diagnoses")

        def broken(fields, cols):
            # an unescaped quote inside a quoted field, followed by a comma: breaks the field count
            out = [('"' + x.replace('"', '""') + '"' if any(ch in x for ch in ',"\n') else x) for x in fields]
            out[cols.index("diagnosis_name")] = '"术后"复查, 未见异常"'
            return ",".join(out)
        rec.post = broken
        k = self.add("diagnoses", rec)
        self.log(rec, k, "raw.diagnoses.record.malformed", "quarantined",
                 "broken quoting: an undoubled quote inside a quoted field, followed by a comma", key)

        # ---- contract: unparseable values, enumerations ------------------------------
        # (file, column, delivered text, check id, description), injected in this order
        bad_values = [
            ("admissions", "admit_time", "2022-02-30 08:00", "raw.admissions.admit_time.datetime",
             "impossible date 2022-02-30"),
            ("itt_trials", "trial_time", "44562.4375", "raw.itt_trials.trial_time.datetime",
             "Excel serial date-time 44562.4375 (not a contract form)"),
            ("diagnoses", "diagnosis_date", "2021-13-05", "raw.diagnoses.diagnosis_date.date", "month 13"),
            ("medication_orders", "dose", "两片", "raw.medication_orders.dose.number", "dose written in words"),
            ("admissions", "total_charge", "约15万", "raw.admissions.total_charge.number", "charge not a number"),
            ("medication_orders", "route", "鼻饲", "raw.medication_orders.route.accepted",
             "route 鼻饲 not in the enumeration"),
        ]
        for stem, column, text, rule_id, description in bad_values:
            rec, key = self.extra_copy(stem)
            rec.override[column] = text
            k = self.add(stem, rec)
            self.log(rec, k, rule_id, "quarantined", description, key)

        # ---- contract: enumerations, ranges, nulls ---------------------------------
        pid = new_pid(self.r, set(self.b.cohort_ids) | {t["patient_id"] for t in self.b.noncohort})
        v = {"patient_id": pid, "name": "测试", "id_number": "110105198001011234", "phone": "13800000000",
             "sex": "M", "birth_date": dt.date(1980, 1, 1), "insurance_type": "employee"}
        rec = Rec("patients", v, override={"sex": "未知性别"})
        k = self.add("patients", rec)
        self.log(rec, k, "raw.patients.sex.accepted", "quarantined", "sex 未知性别 not in the enumeration", pid)

        fu_rows = [row for t in self.b.noncohort if t["category"] in ("nonmalignant_pump", "implant_2020")
                   for row in self.by_pid.get(t["patient_id"], []) if row.stem == "followups"
                   and row.v["outcome"] == "reached"]
        if fu_rows:
            v = dict(fu_rows[0].v)
            key = self.new_key("followups")
            v["followup_id"] = key
            v["nrs"] = D(15)
            rec = Rec("followups", v)
            k = self.add("followups", rec)
            self.log(rec, k, "raw.followups.nrs.range", "quarantined", "NRS 15 outside 0-10", key)

        rec, key = self.extra_copy("measurements", lambda row: row.v["item"] == "weight")
        rec.v["value"] = D(-5)
        k = self.add("measurements", rec)
        self.log(rec, k, "raw.measurements.value.range", "quarantined", "weight -5 kg", key)

        rec, key = self.extra_copy("diagnoses")
        rec.v["patient_id"] = None
        rec.override["patient_id"] = ""
        k = self.add("diagnoses", rec)
        self.log(rec, k, "raw.diagnoses.patient_id.not_null", "quarantined", "diagnosis without a patient", key)

        rec, key = self.extra_copy("medication_orders")
        rec.v["order_id"] = None
        rec.override["order_id"] = ""
        rec.skey = "~"
        k = self.add("medication_orders", rec)
        self.log(rec, k, "raw.medication_orders.order_id.not_null", "quarantined", "order without an order_id", "")

        # ---- orphans ------------------------------------------------------------
        rec, key = self.extra_copy("medication_orders")
        rec.v["patient_id"] = "0099999999"
        rec.v["admission_id"] = None
        k = self.add("medication_orders", rec)
        self.log(rec, k, "raw.medication_orders.patient_id.orphan", "flagged",
                 "order of a patient absent from every patients file", key)
        rec, key = self.extra_copy("adverse_events") if self._has_np("adverse_events") else self.extra_copy(
            "measurements")
        rec.v["patient_id"] = "0099999998"
        rec.v["admission_id"] = None
        k = self.add(rec.stem, rec)
        self.log(rec, k, f"raw.{rec.stem}.patient_id.orphan", "flagged", "row of an unknown patient", key)

        # ---- duplicates and key conflicts ----------------------------------------
        cohort_index = self.cohort_rows("admissions", lambda row: row.tag == "index")
        row = cohort_index[int(r.integers(0, len(cohort_index)))]
        kk, rec = self.final_rec("admissions", row.v["admission_id"])
        rec.dup = True
        self.log(rec, kk, "raw.admissions.record.duplicate", "duplicate",
                 "duplicate admission: the same index-admission row twice (keep one)", row.v["admission_id"], dup=True)

        ms = self.cohort_rows("measurements", lambda row: row.v["item"] == "pain_site")
        row = ms[int(r.integers(0, len(ms)))]
        kk, rec = self.final_rec("measurements", row.v["measurement_id"])
        rec.dup = True
        self.log(rec, kk, "raw.measurements.record.duplicate", "duplicate", "exact duplicate row (keep one)",
                 row.v["measurement_id"], dup=True)

        row = self.np_rows("medication_orders")[0]
        key = self.new_key("medication_orders")
        v1 = dict(row.v, order_id=key)
        v2 = dict(row.v, order_id=key, dose=row.v["dose"] * 2)
        k = self.k_for("medication_orders")
        for v in (v1, v2):
            rec = Rec("medication_orders", v)
            self.add("medication_orders", rec, k)
            self.log(rec, k, "raw.medication_orders.order_id.unique", "quarantined",
                     "two different rows with one order_id in one delivery (both quarantined)", key)

        # ---- clinical: units, scores, levels (cohort rows, recoverable) -----------
        self.clinical()

    def _has_np(self, stem):
        return any(row.stem == stem for pid in self.no_pump if pid not in self.used_pids
                   for row in self.by_pid.get(pid, []))

    def clinical(self):
        r = self.r
        b = self.b

        def final(stem, row):
            return self.final_rec(stem, row.v[SCHEMA[stem][1]])

        def one(rows):
            return rows[int(r.integers(0, len(rows)))]

        # height in metres with an empty unit (true value row): the pipeline converts
        hs = self.cohort_rows("measurements", lambda row: row.v["item"] == "height" and row.tag == ""
                              and row.v["unit"] == "cm")
        row = one(hs)
        k, rec = final("measurements", row)
        rec.v = dict(rec.v, value=row.v["value"] / 100, unit=None)
        rec.override["unit"] = ""
        self.log(rec, k, "R-DM-03", "corrected", f"height {row.v['value'] / 100} with no unit: metres, "
                 f"convert to {row.v['value']} cm (cohort value unchanged after conversion)", row.v["measurement_id"])

        # weight in 斤 recorded with unit kg on an earlier (decoy) measurement
        ws = self.cohort_rows("measurements", lambda row: row.v["item"] == "weight" and row.tag == "decoy"
                              and row.v["admission_id"] is not None)
        row = one(ws)
        k, rec = final("measurements", row)
        rec.v = dict(rec.v, value=row.v["value"] * 2)
        self.log(rec, k, "R-DM-03", "flagged", f"weight {row.v['value'] * 2} kg looks like 斤 (earlier value, "
                 "not the last before the implant: cohort bmi unchanged)", row.v["measurement_id"])

        # NRS 7.5 and Barthel 62 on earlier (decoy) measurements of the index admission
        ns = self.cohort_rows("measurements", lambda row: row.v["item"] == "nrs" and row.tag == "decoy")
        row = one(ns)
        k, rec = final("measurements", row)
        rec.v = dict(rec.v, value=D("7.5"), unit=None)
        self.log(rec, k, "R-PN-01", "flagged", "NRS 7.5 not an integer (earlier value, not the baseline)",
                 row.v["measurement_id"])
        as_ = self.cohort_rows("measurements", lambda row: row.v["item"] == "adl" and row.tag == "decoy")
        row = one(as_)
        k, rec = final("measurements", row)
        rec.v = dict(rec.v, value=D(62))
        self.log(rec, k, "R-DM-05", "flagged", "Barthel 62 not a multiple of 5 (earlier value, not the baseline)",
                 row.v["measurement_id"])

        # level notation variants the pipeline normalises
        imps = self.cohort_rows("idds_implants", lambda row: row.tag == "" and row.v["insertion_level"])
        lat = {p["patient_id"]: p for p in b.records}
        for row in [imps[int(i)] for i in r.permutation(len(imps))[:2]]:
            lev = lat[row.pid]["insertion_level"]
            a, c = lev.split("-")
            text = f"{a}~{c[1:]}" if a[0] == c[0] else f"{a}~{c}"
            k, rec = final("idds_implants", row)
            rec.v = dict(rec.v, insertion_level=text)
            self.log(rec, k, "R-OR-02", "corrected", f"insertion level written {text}: normalise to {lev}",
                     row.v["implant_id"])

        # fentanyl patch as mg content (Durogesic: 4.2 mg = 25 μg/h)
        mg_of = {D(25): D("4.2"), D(50): D("8.4"), D(75): D("12.6"), D(100): D("16.8")}
        pats = self.cohort_rows("medication_orders", lambda row: row.v["dose_unit"] == "ug/h"
                                and row.v["dose"] in mg_of)
        if pats:
            row = one(pats)
            k, rec = final("medication_orders", row)
            rec.v = dict(rec.v, dose=mg_of[row.v["dose"]], dose_unit="mg")
            self.log(rec, k, "R-OP-03", "corrected", f"fentanyl patch recorded as {mg_of[row.v['dose']]} mg content: "
                     f"map to {row.v['dose']} μg/h (baseline OME unchanged)", row.v["order_id"])

        # overlapping duplicate standing order, and a long-term PRN order (no administrations)
        lts = self.cohort_rows("medication_orders", lambda row: row.v["order_kind"] == "long_term"
                               and row.v["route"] != "IT" and row.tag == "" and any(
                                   w in row.v["drug_name"] for w in ("吗啡", "羟考酮", "Morphine", "Oxycodone")))
        row = one(lts)
        v = dict(row.v, order_id=self.new_key("medication_orders"))
        rec = Rec("medication_orders", v)
        k = self.add("medication_orders", rec, final("medication_orders", row)[0])
        self.log(rec, k, "R-OP-07", "flagged", f"duplicate overlapping standing order of {row.v['order_id']}: "
                 "count once (baseline OME unchanged)", v["order_id"])
        row2 = one([x for x in lts if x.pid != row.pid])
        v = dict(row2.v, order_id=self.new_key("medication_orders"), drug_name="盐酸吗啡片", dose=D(10),
                 dose_unit="mg", route="PO", frequency="prn", end_time=None,
                 start_time=row2.v["start_time"] + dt.timedelta(minutes=20))
        rec = Rec("medication_orders", v)
        k = self.add("medication_orders", rec, final("medication_orders", row2)[0])
        self.log(rec, k, "R-OP-04", "flagged", "long-term PRN opioid order with no administration record: "
                 "contributes 0 (baseline OME unchanged)", v["order_id"])

        # hydromorphone μg written as mg, after the 72 h window
        idx = [x for x in self.cohort_rows("admissions", lambda x: x.tag == "index")
               if x.v["discharge_time"] - x.v["admit_time"] > dt.timedelta(hours=90)]
        row = one(idx)
        t = row.v["admit_time"] + dt.timedelta(hours=80)
        v = {"order_id": self.new_key("medication_orders"), "patient_id": row.pid, "admission_id": row.v["admission_id"],
             "drug_name": "盐酸氢吗啡酮注射液", "dose": D(2000), "dose_unit": "mg", "route": "IV", "frequency": "st",
             "order_kind": "temporary", "start_time": t, "end_time": None}
        rec = Rec("medication_orders", v)
        k = self.add("medication_orders", rec, self.final_rec("admissions", row.v["admission_id"])[0])
        self.log(rec, k, "R-OP-02", "flagged", "hydromorphone 2000 mg single IV dose: μg written as mg "
                 "(80 h after admission, outside the baseline window)", v["order_id"])

        # death report dated before the implant, superseded by the later true report
        lat_dead = [p for p in b.records if p.get("followup_status") == "followed" and p.get("death_date")
                    and p["last_contact_date"] and p["last_contact_date"] > p["discharge_date"]
                    and (p["death_date"] - p["last_contact_date"]).days > 3]
        if lat_dead:
            p = one(lat_dead)
            d = p["last_contact_date"] + dt.timedelta(days=1)
            v = {"followup_id": self.new_key("followups"), "patient_id": p["patient_id"], "contact_date": d,
                 "outcome": "reached", "respondent": "family", "vital_status": "dead",
                 "death_date": p["implant_date"] - dt.timedelta(days=30), "nrs": None, "satisfied": None,
                 "dissatisfaction_reason": None, "systemic_opioid": None}
            rec = Rec("followups", v)
            k = self.add("followups", rec)
            self.log(rec, k, "R-DT-04", "quarantined", "death date before the implant (a later report gives the true "
                     "date, latest report wins)", v["followup_id"])

        # a follow-up call dated after the cut-off
        lost = [p for p in b.records if p.get("followup_status") == "lost_or_refused"]
        if lost:
            p = one(lost)
            v = {"followup_id": self.new_key("followups"), "patient_id": p["patient_id"],
                 "contact_date": CUTOFF + dt.timedelta(days=13), "outcome": "lost", "respondent": None,
                 "vital_status": None, "death_date": None, "nrs": None, "satisfied": None,
                 "dissatisfaction_reason": None, "systemic_opioid": None}
            rec = Rec("followups", v)
            k = self.add("followups", rec)
            self.log(rec, k, "R-DT-05", "quarantined", "follow-up call dated after the 2024-03-20 cut-off",
                     v["followup_id"])

        # costs: 万元 and self-pay > total on non-cohort pump patients (outside the window)
        outside = [t["patient_id"] for t in b.noncohort if t["category"] in ("implant_2020", "implant_2024")]
        adms = [row for pid in outside for row in self.by_pid.get(pid, []) if row.stem == "admissions"
                and row.v["department"] == "疼痛科" and row.v["total_charge"] is not None]
        if len(adms) >= 2:
            row = adms[0]
            k, rec = final("admissions", row)
            wan = (row.v["total_charge"] / 10000).quantize(D("0.01"))
            rec.v = dict(rec.v, total_charge=wan, self_pay=(row.v["self_pay"] / 10000).quantize(D("0.01")))
            self.log(rec, k, "R-CS-02", "quarantined", f"charges in 万元 ({wan}); non-cohort (implant outside the "
                     "window)", row.v["admission_id"])
            row = adms[-1]
            k, rec = final("admissions", row)
            rec.v = dict(rec.v, self_pay=row.v["total_charge"] + 5000)
            self.log(rec, k, "R-CS-01", "quarantined", "self-pay larger than the total; non-cohort",
                     row.v["admission_id"])

        # discharge before the implant; admission after the implant (post-op stay longer than the stay)
        impl = {t["patient_id"]: dt.date.fromisoformat(t["implant_date"]) for t in b.noncohort if t["implant_date"]}
        if len(adms) >= 4:
            row = adms[1]
            k, rec = final("admissions", row)
            d = impl[row.pid] - dt.timedelta(days=1)
            rec.v = dict(rec.v, discharge_time=at(d, 10, 0))
            self.log(rec, k, "R-DT-02", "quarantined", f"discharge {d} before the implant {impl[row.pid]}; "
                     "non-cohort (implant outside the window)", row.v["admission_id"])
            row = adms[2]
            k, rec = final("admissions", row)
            d = impl[row.pid] + dt.timedelta(days=1)
            rec.v = dict(rec.v, admit_time=at(d, 9, 0))
            self.log(rec, k, "R-LS-01", "quarantined", f"admission {d} after the implant {impl[row.pid]}: post-op "
                     "stay longer than the whole stay; non-cohort (implant outside the window)", row.v["admission_id"])

        # swapped day/month on a no-pump admission: discharge before admission
        for pid in self.no_pump:
            if pid in self.used_pids:
                continue
            cand = [row for row in self.by_pid[pid] if row.stem == "admissions" and row.v["discharge_time"]
                    and row.v["discharge_time"].day <= 12 and row.v["discharge_time"].month > row.v["discharge_time"].day
                    and row.v["discharge_time"].day != row.v["discharge_time"].month]
            if cand:
                row = cand[0]
                t = row.v["discharge_time"]
                sw = t.replace(month=t.day, day=t.month)
                if sw >= row.v["admit_time"] or sw.date() > CUTOFF:
                    continue
                self.used_pids.add(pid)
                k, rec = final("admissions", row)
                rec.v = dict(rec.v, discharge_time=sw)
                self.log(rec, k, "R-LS-01", "quarantined", f"day and month swapped in the discharge time "
                         f"({sw:%Y-%m-%d} for {t:%Y-%m-%d}): discharge before admission", row.v["admission_id"])
                break

        # a later replacement admission recorded as is_replacement = no (name says 更换)
        revs = self.cohort_rows("idds_implants", lambda row: row.tag == "revision")
        if revs:
            row = revs[0]
            k, rec = final("idds_implants", row)
            rec.v = dict(rec.v, is_replacement="no")
            self.log(rec, k, "R-ID-03", "flagged", "pump revision (procedure name 更换) recorded as a first implant; "
                     "it is later than the index implant, which stays the index", row.v["implant_id"])

        # extra patients: cancer-pain pump without any C-code; malignancy coded only after the implant
        self.extra_patient("R-ID-04", "dirty_no_ccode", Opts(malignant=False, category="no_ccode"),
                           "cancer-pain indication but no malignancy code: exclude (nonmalignant_pain)")
        self.extra_patient("R-DT-03", "dirty_dx_after", Opts(malignant=False, category="nonmalignant_dx_after"),
                           "malignancy coded only after the implant admission: exclude (nonmalignant_pain)")

    def extra_patient(self, rule, category, opts, desc):
        r = self.r
        taken = set(self.b.cohort_ids) | {t["patient_id"] for t in self.b.noncohort}
        pid = new_pid(r, taken)
        implant = dt.date(2022, 1, 10) + dt.timedelta(days=int(r.integers(0, 500)))
        p = pseudo_latent(r, pid, implant, self.b.ids, malignant=False)
        rr = PatientRenderer(self.b.ids, r)
        rows = rr.render(p, opts)
        self.b.noncohort.append({"patient_id": pid, "category": category, "expected_step": "nonmalignant_pain",
                                 "implant_date": implant.isoformat(), "description": desc})
        k = self.last
        for row in rows:
            rs = self.plan.resent
            kk = k - 1 if (rs and rs["stem"] == row.stem and k == len(self.plan.ids) - 1) else k
            rec = Rec(row.stem, dict(row.v))
            self.plan.recs[kk][row.stem].append(rec)
            if row.stem == "idds_implants":
                self.log(rec, kk, rule, "flagged", desc, row.v["implant_id"])


def inject(plan: Plan, bundle: Bundle, styles: dict[str, FileStyle], r: np.random.Generator) -> None:
    Injector(plan, bundle, styles, r).run()


def collect(plan: Plan, styles: dict[str, FileStyle]) -> list[dict]:
    out = []
    for k, did in enumerate(plan.ids):
        for stem, recs in plan.recs[k].items():
            for rec in recs:
                for d, line in [(d, rec.line) for d in rec.defects] + [(d, rec.dup_line) for d in rec.dup_defects]:
                    out.append({"delivery_id": did, "source_file": styles[stem].filename, "line_number": line,
                                "record_key": d["record_key"], "rule_id": d["rule_id"],
                                "expected_disposition": d["expected_disposition"], "description": d["description"]})
    out.sort(key=lambda d: (d["delivery_id"], d["source_file"], d["line_number"], d["rule_id"]))
    return out
