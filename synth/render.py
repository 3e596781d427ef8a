"""Stage B: render latent patients into canonical extract rows.

A latent row (one included patient, columns of ``docs/cohort_variables.md`` plus the
latent-only columns) becomes rows of the twelve contract files, laid out so that the
study definition's rules give every latent value back:

* the index admission contains the implant; every baseline measurement has an
  earlier decoy value and the true value is the last one before the implant;
* diagnoses date the earliest primary malignancy and the earliest pain code;
* opioid orders of the index admission add up to ``baseline_ome_mg_per_day``
  exactly: long-term orders active in the first 24 h as daily amounts (dose ×
  doses per day × factor; patches μg/h × factor) plus temporary doses of the first
  72 h summed and divided by 3 (the residue of the target); intrathecal orders,
  later titrations and earlier admissions carry decoy opioids that must not count;
* follow-ups give status, first-contact NRS, latest satisfaction and opioid use,
  death date and the last alive contact.

Rows here hold canonical values (``datetime``, ``date``, ``Decimal``, codes);
``variants.Formatter`` turns them into text. The conversion factors below are the
study's pipeline defaults, written out again in this module on purpose: the
generator shares no code with the pipeline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

D = Decimal
CUTOFF = dt.date(2024, 3, 20)
ZERO = D(0)

# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


@dataclass
class Row:
    stem: str
    v: dict
    ship: dt.date                                 # date from which the row exists
    pending: dict = field(default_factory=dict)   # column -> date its value becomes known
    pid: str = ""
    tag: str = ""                                 # role of the row (decoy, index, ...), for the injector


def _missing(x) -> bool:
    """None, NaN, NaT or pd.NA (and not a container pandas cannot test)."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def to_date(x) -> dt.date | None:
    if _missing(x):
        return None
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    return pd.Timestamp(x).date()


def to_datetime(x, base: dt.date | None = None) -> dt.datetime | None:
    if _missing(x):
        return None
    if isinstance(x, dt.datetime):
        return x.replace(tzinfo=None)
    if isinstance(x, dt.time) and base is not None:
        return dt.datetime.combine(base, x)
    if isinstance(x, str) and base is not None and len(x.strip()) <= 8 and ":" in x:
        hh, mm, *ss = x.strip().split(":")
        return dt.datetime.combine(base, dt.time(int(hh), int(mm), int(ss[0]) if ss else 0))
    return pd.Timestamp(x).to_pydatetime().replace(tzinfo=None)


def to_bool(x) -> bool:
    if x is None:
        return False
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes", "y", "t")
    try:
        if pd.isna(x):
            return False
    except (TypeError, ValueError):
        pass
    return bool(x)


def to_dec(x, places: int = 6) -> Decimal | None:
    if x is None:
        return None
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(x, Decimal):
        return x
    q = D(repr(round(float(x), places)))
    return q.normalize() if q != q.to_integral_value() else q.quantize(D(1))


def to_str(x) -> str | None:
    if x is None:
        return None
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        pass
    s = str(x).strip()
    return s or None


def at(d: dt.date, h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, h, m)


def rint(r: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(r.integers(lo, hi + 1))


def pick(r: np.random.Generator, seq):
    return seq[int(r.integers(0, len(seq)))]


def chance(r: np.random.Generator, p: float) -> bool:
    return float(r.random()) < p


class Ids:
    """Deterministic id counters per kind."""

    PREFIX = {"diagnoses": "ZD", "measurements": "PG", "medication_orders": "YZ", "procedures": "SS",
              "treatment_history": "JW", "itt_trials": "SY", "pump_programs": "CK",
              "adverse_events": "BF", "followups": "SF", "admissions": "ZY", "idds_implants": "BZ"}
    WIDTH = {"medication_orders": 10, "measurements": 10}

    def __init__(self, start: int = 1):
        self.n = {k: start for k in self.PREFIX}
        self.taken: set[str] = set()

    def next(self, kind: str) -> str:
        while True:
            n = self.n[kind]
            self.n[kind] += 1
            s = f"{self.PREFIX[kind]}{n:0{self.WIDTH.get(kind, 8)}d}"
            if s not in self.taken:
                return s


# ---------------------------------------------------------------------------
# clinical dictionaries
# ---------------------------------------------------------------------------

CANCER_NAMES = {
    "C34": "肺恶性肿瘤", "C18": "结肠恶性肿瘤", "C19": "直肠乙状结肠连接处恶性肿瘤", "C20": "直肠恶性肿瘤",
    "C25": "胰腺恶性肿瘤", "C50": "乳腺恶性肿瘤", "C22": "肝恶性肿瘤", "C16": "胃恶性肿瘤",
    "C15": "食管恶性肿瘤", "C53": "宫颈恶性肿瘤", "C56": "卵巢恶性肿瘤", "C61": "前列腺恶性肿瘤",
    "C64": "肾恶性肿瘤", "C67": "膀胱恶性肿瘤", "C40": "骨恶性肿瘤", "C41": "骨恶性肿瘤",
    "C49": "软组织恶性肿瘤", "C80": "恶性肿瘤，原发部位不明", "C23": "胆囊恶性肿瘤", "C24": "胆管恶性肿瘤",
    "C11": "鼻咽恶性肿瘤", "C10": "口咽恶性肿瘤", "C32": "喉恶性肿瘤", "C02": "舌恶性肿瘤", "C33": "气管恶性肿瘤",
    "C90": "多发性骨髓瘤", "C85": "非霍奇金淋巴瘤", "C54": "子宫体恶性肿瘤", "C71": "脑恶性肿瘤",
}
SITE_CODES = {  # cancer_site bucket -> a representative primary code (for non-cohort patients)
    "lung": "C34.9", "colorectal": "C18.9", "pancreas": "C25.0", "breast": "C50.9", "liver": "C22.0",
    "stomach": "C16.9", "oesophagus": "C15.9", "cervix": "C53.9", "ovary": "C56", "prostate": "C61",
    "kidney": "C64", "bladder": "C67.9", "bone": "C41.2", "soft_tissue": "C49.9", "head_neck": "C11.9",
    "biliary": "C24.0", "unknown_primary": "C80.0", "haematological": "C90.0", "other": "C54.1",
}
MET_CODES = {"bone": ("C79.5", "骨继发恶性肿瘤"), "liver": ("C78.7", "肝继发恶性肿瘤"),
             "lung": ("C78.0", "肺继发恶性肿瘤"), "peritoneum": ("C78.6", "腹膜继发恶性肿瘤"),
             "retroperitoneum": ("C78.6", "腹膜后继发恶性肿瘤"),
             "brain": ("C79.3", "脑继发恶性肿瘤"), "adrenal": ("C79.7", "肾上腺继发恶性肿瘤"),
             "pleura": ("C78.2", "胸膜继发恶性肿瘤"), "skin": ("C79.2", "皮肤继发恶性肿瘤"),
             "ovary": ("C79.6", "卵巢继发恶性肿瘤"), "kidney": ("C79.0", "肾继发恶性肿瘤"),
             "other": ("C79.8", "其他部位继发恶性肿瘤")}
COMORBID = [("I10.x00", "高血压"), ("E11.900", "2型糖尿病"), ("K59.000", "便秘"), ("I25.103", "冠状动脉粥样硬化性心脏病"),
            ("J18.900", "肺炎"), ("D64.900", "贫血"), ("E87.600", "低钾血症"), ("K21.000", "胃食管反流病")]
PAIN_CODES_CANCER = [("G89.3", "癌性疼痛"), ("G89.300", "肿瘤相关性疼痛")]
PAIN_CODES_OTHER = [("M54.5", "腰痛"), ("R52.9", "疼痛"), ("R10.4", "腹痛"), ("M54.6", "胸背痛"),
                    ("R52.1", "慢性顽固性疼痛"), ("M54.9", "背痛")]
NONMALIGNANT_PAIN = [("G89.2", "慢性疼痛"), ("M54.5", "腰痛"), ("M96.1", "椎板切除术后综合征"),
                     ("G56.4", "复杂性区域疼痛综合征"), ("B02.2", "带状疱疹后神经痛"), ("M54.1", "神经根病")]
LINE_TYPES = {"gastrostomy": "胃造瘘", "enterostomy": "肠造瘘", "urinary_catheter": "导尿管",
              "gallbladder_drain": "胆囊引流管", "abdominal_drain": "腹腔引流管", "thoracic_drain": "胸腔引流管"}
LINES = ["胃造瘘", "肠造瘘", "导尿管", "胆囊引流管", "腹腔引流管", "胸腔引流管", "PICC置管"]
PAIN_SITES = ["lumbosacral", "abdomen", "back", "lower_limb", "perineum", "chest", "head_neck", "upper_limb"]

# long-term opioid products: (name, dose, unit, route, freq, doses/day, factor)
LONG_TERM = [
    ("硫酸吗啡缓释片", "10", "mg", "PO", "q12h", 2, "1"),
    ("硫酸吗啡缓释片", "30", "mg", "PO", "q12h", 2, "1"),
    ("硫酸吗啡缓释片", "60", "mg", "PO", "q12h", 2, "1"),
    ("Morphine sulfate ER tablet", "30", "mg", "PO", "bid", 2, "1"),
    ("硫酸吗啡缓释片", "30", "mg", "PO", "q8h", 3, "1"),
    ("盐酸吗啡片", "10", "mg", "PO", "q4h", 6, "1"),
    ("盐酸羟考酮缓释片", "10", "mg", "PO", "q12h", 2, "1.5"),
    ("盐酸羟考酮缓释片", "20", "mg", "PO", "q12h", 2, "1.5"),
    ("盐酸羟考酮缓释片", "40", "mg", "PO", "q12h", 2, "1.5"),
    ("盐酸羟考酮缓释片", "80", "mg", "PO", "q12h", 2, "1.5"),
    ("Oxycodone hydrochloride ER tablet", "40", "mg", "PO", "q12h", 2, "1.5"),
    ("芬太尼透皮贴剂", "25", "ug/h", "TD", "q72h", None, "2.4"),
    ("芬太尼透皮贴剂", "50", "ug/h", "TD", "q72h", None, "2.4"),
    ("芬太尼透皮贴剂", "75", "ug/h", "TD", "q72h", None, "2.4"),
    ("芬太尼透皮贴剂", "100", "ug/h", "TD", "q72h", None, "2.4"),
    ("盐酸曲马多缓释片", "100", "mg", "PO", "bid", 2, "0.2"),
    ("盐酸曲马多缓释片", "0.1", "g", "PO", "q12h", 2, "0.2"),     # 0.1 g = 100 mg
    ("盐酸吗啡注射液", "1", "mg/h", "SC", "continuous", 24, "3"),
    ("盐酸吗啡注射液", "2", "mg/h", "IV", "continuous", 24, "3"),
]


def lt_daily(p) -> Decimal:
    name, dose, unit, route, freq, per_day, factor = p
    d = D(dose) * (D(1000) if unit == "g" else D(1))
    if unit == "ug/h":
        return d * D(factor)
    return d * D(per_day) * D(factor)


ADJUVANTS = {
    "nsaid": [("塞来昔布胶囊", "200", "mg", "PO", "bid"), ("洛索洛芬钠片", "60", "mg", "PO", "tid"),
              ("氟比洛芬酯注射液", "50", "mg", "IV", "bid"), ("布洛芬缓释胶囊", "0.3", "g", "PO", "bid")],
    "anticonvulsant": [("普瑞巴林胶囊", "75", "mg", "PO", "bid"), ("加巴喷丁胶囊", "0.3", "g", "PO", "tid")],
    "antidepressant": [("盐酸度洛西汀肠溶胶囊", "30", "mg", "PO", "qd"), ("盐酸阿米替林片", "25", "mg", "PO", "qn")],
}
UNRELATED = [("奥美拉唑肠溶胶囊", "20", "mg", "PO", "qd", "long_term"),
             ("聚乙二醇4000散", "10", "g", "PO", "qd", "long_term"),
             ("甲氧氯普胺注射液", "10", "mg", "IM", "st", "temporary"),
             ("地塞米松磷酸钠注射液", "5", "mg", "IV", "st", "temporary"),
             ("氯化钾缓释片", "1", "g", "PO", "tid", "long_term"),
             ("阿托伐他汀钙片", "20", "mg", "PO", "qn", "long_term"),
             ("苯磺酸氨氯地平片", "5", "mg", "PO", "qd", "long_term"),
             ("盐酸二甲双胍片", "0.5", "g", "PO", "tid", "long_term"),
             ("盐酸昂丹司琼注射液", "8", "mg", "IV", "st", "temporary"),
             ("注射用头孢呋辛钠", "1.5", "g", "IV", "bid", "long_term"),
             ("艾司唑仑片", "1", "mg", "PO", "qn", "long_term"),
             ("复方氨基酸注射液", "250", "mg", "IV", "qd", "long_term")]

OTHER_DEPTS = ["肿瘤内科", "胸外科", "普外科", "消化内科", "呼吸内科", "放疗科", "妇科", "泌尿外科", "骨科"]

NOTES = [
    "患者诉\"夜间疼痛明显\"，予对症处理",
    "术后第1天出现头痛，平卧后缓解，\n嘱多饮水",
    "体温38.2℃，予物理降温, 复查血常规",
    "家属诉\"疼痛明显减轻\"，继续观察",
    "排尿困难，予导尿，\n次日拔除",
    "大便3日未解，予通便治疗, 好转",
]


def level_index(level: str) -> int:
    """T1 -> 1 ... T12 -> 12, L1 -> 13 ... L5 -> 17, S1 -> 18 (for ordering only)."""
    base = {"C": -7, "T": 0, "L": 12, "S": 17}[level[0]]
    return base + int(level[1:])


def parse_level(s: str) -> tuple[str, str]:
    """'L2-L3' -> ('L2', 'L3'); tolerant of 'L2-3' and 'L2/3'."""
    s = s.replace("/", "-").replace("~", "-").strip()
    a, b = s.split("-")
    if b[0].isdigit():
        b = a[0] + b
    return a, b


def render_level(level: str, r: np.random.Generator, used: set[str]) -> str:
    a, b = parse_level(level)
    forms = ["slash", "short", "long"]
    if a[0] == "L" and b[0] == "L":
        forms.append("cn")
    f = pick(r, forms)
    used.add(f"level:{f}")
    if f == "long":
        return f"{a}-{b}"
    if f == "cn":
        return f"腰{a[1:]}-{b[1:]}"
    sep = "/" if f == "slash" else "-"
    if a[0] == b[0]:
        return f"{a}{sep}{b[1:]}"
    return f"{a}{sep}{b}"


def render_tip(tip: str, r: np.random.Generator, used: set[str]) -> str:
    if chance(r, 0.25):
        used.add("tip:椎体")
        return tip + "椎体"
    used.add("tip:plain")
    return tip


# ---------------------------------------------------------------------------
# latent coercion
# ---------------------------------------------------------------------------

DATE_COLS = ["implant_date", "admission_date", "discharge_date", "birth_date", "cancer_dx_date",
             "pain_onset_date", "explant_date", "death_date", "last_contact_date"]
BOOL_COLS = ["pressure_sore", "skin_compromising_line", "arrival_wheelchair_or_cart", "metastasis_any",
             "met_bone", "met_liver", "met_lung", "met_other", "pain_preceded_cancer",
             "prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy", "prior_pain_intervention",
             "systemic_opioid_user", "catheter_cephalad", "comp_pdph", "comp_fever",
             "comp_urinary_retention_constipation", "comp_infection", "comp_poor_wound_healing",
             "in_hospital_death", "explanted"] + [f"pain_site_{s}" for s in PAIN_SITES]


def latent_records(latent: pd.DataFrame) -> list[dict]:
    """Latent table -> list of plain dicts with Python types (dates, bools, Decimals)."""
    out = []
    for rec in latent.to_dict("records"):
        p = dict(rec)
        for c in DATE_COLS:
            p[c] = to_date(p.get(c))
        for c in BOOL_COLS:
            p[c] = to_bool(p.get(c))
        p["patient_id"] = to_str(p["patient_id"])
        for c in ("implant_id", "admission_id", "sex", "insurance_type", "cancer_site", "cancer_icd10",
                  "met_other_sites", "implant_reason", "itt_drug", "insertion_level", "catheter_tip_level",
                  "device_model", "idds_drug", "followup_status", "systemic_opioid_after", "respondent",
                  "dissatisfaction_reason", "vital_status_at_cutoff"):
            p[c] = to_str(p.get(c))
        sat = p.get("satisfied")
        p["satisfied"] = None if sat is None or (not isinstance(sat, str) and pd.isna(sat)) else to_bool(sat)
        p["implant_start_time"] = to_datetime(p.get("implant_start_time"), p["implant_date"])
        p["implant_end_time"] = to_datetime(p.get("implant_end_time"), p["implant_date"])
        for c in ("height_cm", "weight_kg", "bmi", "baseline_ome_mg_per_day", "itt_dose_mg",
                  "initial_daily_dose_mg", "total_charge_cny", "self_pay_cny", "surgery_duration_hours"):
            p[c] = to_dec(p.get(c))
        for c in ("age_years", "adl_barthel", "baseline_nrs", "n_adjuvant_drugs", "itt_count", "followup_nrs",
                  "os_days", "os_event", "los_days", "postop_los_days"):
            v = p.get(c)
            p[c] = None if v is None or (not isinstance(v, str) and pd.isna(v)) else int(v)
        out.append(p)
    return out


# ---------------------------------------------------------------------------
# the patient renderer
# ---------------------------------------------------------------------------

@dataclass
class Opts:
    """How a (pseudo-)latent patient deviates from an included one (non-cohort use)."""
    indication: str = "cancer_pain"
    is_replacement: bool = False
    malignant: bool = True
    drop: tuple = ()              # baseline elements to leave out: height, adl, nrs_pre, insertion, tip, programs
    category: str = "cohort"
    later_revision: bool = False  # a later is_replacement implant (cohort patients)


class PatientRenderer:
    def __init__(self, ids: Ids, rng: np.random.Generator):
        self.ids = ids
        self.r = rng
        self.used: set[str] = set()

    # -- tiny row makers -----------------------------------------------------
    def _row(self, out, stem, ship, pid, pending=None, tag="", **v):
        out.append(Row(stem, v, ship, pending or {}, pid, tag))
        return v

    def meas(self, out, p, adm, when, item, value, unit=None, note=""):
        mid = self.ids.next("measurements")
        self._row(out, "measurements", when.date(), p["patient_id"], tag=note, measurement_id=mid,
                  patient_id=p["patient_id"], admission_id=adm, measured_at=when, item=item, value=value,
                  unit=unit)

    def order(self, out, p, adm, name, dose, unit, route, freq, kind, start, end=None, note=""):
        oid = self.ids.next("medication_orders")
        pending = {"end_time": end.date()} if end is not None else {}
        self._row(out, "medication_orders", start.date(), p["patient_id"], pending, note, order_id=oid,
                  patient_id=p["patient_id"], admission_id=adm, drug_name=name, dose=D(dose),
                  dose_unit=unit, route=route, frequency=freq, order_kind=kind, start_time=start, end_time=end)
        return oid

    # -- the whole patient ---------------------------------------------------
    def render(self, p: dict, o: Opts | None = None) -> list[Row]:
        o = o or Opts()
        r = self.r
        out: list[Row] = []
        pid = p["patient_id"]
        impl_d: dt.date = p["implant_date"]
        adm_d: dt.date = p["admission_date"]
        dis_d: dt.date = p["discharge_date"]
        adm_id = p["admission_id"]
        admit = at(adm_d, rint(r, 8, 11), pick(r, [0, 10, 15, 20, 30, 40, 45, 50]))
        start = p.get("implant_start_time")
        end = p.get("implant_end_time")
        if start is None:
            start = at(impl_d, rint(r, 8, 13), pick(r, [0, 15, 30, 45]))
        if end is None:
            hrs = p.get("surgery_duration_hours") or D("2.3")
            end = start + dt.timedelta(minutes=int(round(float(hrs) * 60)))
        if p["in_hospital_death"]:
            discharge = at(dis_d, rint(r, 1, 6), pick(r, [5, 20, 35, 50]))
            discharge = max(discharge, end + dt.timedelta(hours=2)) if dis_d == impl_d else discharge
        else:
            discharge = at(dis_d, rint(r, 9, 16), pick(r, [0, 30]))
        last_pre = start - dt.timedelta(hours=rint(r, 2, 18), minutes=pick(r, [0, 10, 25, 40]))
        if last_pre <= admit + dt.timedelta(hours=1):
            last_pre = admit + dt.timedelta(hours=1, minutes=30)
        early = admit + dt.timedelta(minutes=pick(r, [20, 30, 40, 50]))
        post = min(end + dt.timedelta(hours=20), discharge - dt.timedelta(minutes=30))

        # ---- patients --------------------------------------------------------
        if "_name" not in p:
            phi(p, r)
        first_seen = min(x for x in [p.get("cancer_dx_date"), p.get("pain_onset_date"), adm_d] if x)
        self._row(out, "patients", first_seen, pid, patient_id=pid, name=p["_name"], id_number=p["_idno"],
                  phone=p["_phone"], sex=p["sex"], birth_date=p["birth_date"],
                  insurance_type=p.get("insurance_type"))

        # ---- earlier admissions (oncology) -------------------------------------
        lo = p.get("cancer_dx_date") or adm_d - dt.timedelta(days=200)
        prior_adms = []
        span = (adm_d - lo).days
        n_prior = 0 if span < 40 else rint(r, 0, 2)
        for _ in range(n_prior):
            s = lo + dt.timedelta(days=rint(r, 1, max(2, span - 30)))
            e = s + dt.timedelta(days=rint(r, 2, 9))
            if e >= adm_d - dt.timedelta(days=3) or any(not (e < a or s > b) for a, b, _ in prior_adms):
                continue
            aid = self.ids.next("admissions")
            dept = pick(r, OTHER_DEPTS)
            self._row(out, "admissions", s, pid, tag="prior", admission_id=aid, patient_id=pid,
                      admit_time=at(s, rint(r, 8, 15), 0), discharge_time=at(e, 10, 0), department=dept,
                      arrival_mode=pick(r, ["walk", "walk", "wheelchair"]), discharge_status="alive",
                      total_charge=D(rint(r, 8000, 60000)) + D(rint(r, 0, 99)) / 100,
                      self_pay=D(rint(r, 1000, 9000)) + D(rint(r, 0, 99)) / 100)
            prior_adms.append((s, e, aid))
            # decoy measurements on the earlier admission (other values; must not count)
            t0 = at(s, 10, 30)
            if p.get("weight_kg") is not None:
                self.meas(out, p, aid, t0, "weight", p["weight_kg"] + rint(r, 2, 6), "kg", note="decoy")
            self.meas(out, p, aid, t0 + dt.timedelta(minutes=5), "nrs", D(rint(r, 2, 6)), None, note="decoy")
            if chance(r, 0.3) and not p["pressure_sore"]:
                self.meas(out, p, aid, t0 + dt.timedelta(minutes=8), "pressure_sore", "是", None, note="decoy")
            if chance(r, 0.3) and not p["skin_compromising_line"]:
                self.meas(out, p, aid, t0 + dt.timedelta(minutes=9), "indwelling_line", pick(r, LINES), None,
                          note="decoy")
            # an opioid on the earlier admission (not the index admission)
            self.order(out, p, aid, "盐酸羟考酮缓释片", "20", "mg", "PO", "q12h", "long_term",
                       at(s, 11, 0), at(e, 9, 0), note="decoy")
            if p.get("cancer_icd10"):
                self.dx(out, p, aid, s, p["cancer_icd10"], note="repeat")

        # ---- index admission --------------------------------------------------
        arrival = to_str(p.get("arrival_mode"))
        if arrival not in ("walk", "wheelchair", "cart") or \
                (arrival != "walk") != bool(p["arrival_wheelchair_or_cart"]):
            arrival = ("wheelchair" if chance(r, 0.6) else "cart") if p["arrival_wheelchair_or_cart"] else "walk"
        status = "dead" if p["in_hospital_death"] else ("transfer" if chance(r, 0.02) else "alive")
        self._row(out, "admissions", adm_d, pid, pending={"discharge_time": dis_d, "discharge_status": dis_d,
                                                           "total_charge": dis_d, "self_pay": dis_d},
                  tag="index", admission_id=adm_id, patient_id=pid, admit_time=admit, discharge_time=discharge,
                  department="疼痛科", arrival_mode=arrival, discharge_status=status,
                  total_charge=p.get("total_charge_cny"), self_pay=p.get("self_pay_cny"))

        # ---- measurements (index admission) ------------------------------------
        h, w = p.get("height_cm"), p.get("weight_kg")
        if "height" not in o.drop and h is not None:
            self.meas(out, p, adm_id, early, "height", h + pick(r, [-2, -1, 1, 2]), "cm", note="decoy")
            self.height(out, p, adm_id, last_pre, h)
        if w is not None:
            self.meas(out, p, adm_id, early + dt.timedelta(minutes=1), "weight", w + pick(r, [-3, -2, 2, 3]),
                      "kg", note="decoy")
            self.weight(out, p, adm_id, last_pre + dt.timedelta(minutes=2), w)
            if post > end:
                self.meas(out, p, adm_id, post, "weight", w - 1, "kg", note="post")
        nrs = p.get("baseline_nrs")
        if nrs is not None:
            alt = nrs - 1 if nrs >= 5 else nrs + 2
            if "nrs_pre" not in o.drop:
                self.score(out, p, adm_id, early + dt.timedelta(minutes=3), "nrs", alt, note="decoy")
                self.score(out, p, adm_id, last_pre + dt.timedelta(minutes=4), "nrs", nrs)
            if post > end:
                self.score(out, p, adm_id, post + dt.timedelta(minutes=1), "nrs", max(0, min(nrs, 10) - 4),
                           note="post")
        adl = p.get("adl_barthel")
        if adl is not None and "adl" not in o.drop:
            alt = adl + 10 if adl <= 80 else adl - 15
            self.score(out, p, adm_id, early + dt.timedelta(minutes=5), "adl", alt, note="decoy")
            self.score(out, p, adm_id, last_pre + dt.timedelta(minutes=6), "adl", adl)
            if post > end:
                self.score(out, p, adm_id, post + dt.timedelta(minutes=2), "adl", min(100, adl + 5), note="post")
        if p["pressure_sore"]:
            self.meas(out, p, adm_id, early + dt.timedelta(minutes=7), "pressure_sore", pick(r, ["是", "yes"]), None)
        elif chance(r, 0.5):
            self.meas(out, p, adm_id, early + dt.timedelta(minutes=7), "pressure_sore", pick(r, ["否", "no"]), None)
        if p["skin_compromising_line"]:
            kind = LINE_TYPES.get(to_str(p.get("skin_line_type")) or "")
            lines = [kind] if kind else [str(x) for x in r.permutation(LINES)[: rint(r, 1, 2)]]
            for line in lines:
                self.meas(out, p, adm_id, early + dt.timedelta(minutes=8), "indwelling_line", line, None)
        for site in PAIN_SITES:
            if p.get(f"pain_site_{site}"):
                self.meas(out, p, adm_id, early + dt.timedelta(minutes=9), "pain_site",
                          site if chance(r, 0.5) else PAIN_SITE_LABELS_CN[site], None)

        # ---- diagnoses --------------------------------------------------------
        if o.malignant and p.get("cancer_icd10"):
            self.dx(out, p, None, p["cancer_dx_date"], p["cancer_icd10"], note="primary")
            self.dx(out, p, adm_id, max(adm_d, p["cancer_dx_date"]), p["cancer_icd10"], note="repeat")
            mets = []
            if p["met_bone"]:
                mets.append("bone")
            if p["met_liver"]:
                mets.append("liver")
            if p["met_lung"]:
                mets.append("lung")
            others = [s.strip() for s in (p.get("met_other_sites") or "").replace(",", ";").split(";") if s.strip()]
            if p["met_other"] and not others:
                others = ["peritoneum"]
            mets += others
            for m in mets:
                code, name = MET_CODES.get(m, MET_CODES["other"])
                lo_m = p["cancer_dx_date"]
                dd = lo_m + dt.timedelta(days=rint(r, 0, max(0, (adm_d - lo_m).days)))
                self.dx(out, p, adm_id if dd == adm_d else None, dd, code, name)
            if not p["metastasis_any"] and chance(r, 0.4):
                self.dx(out, p, adm_id, adm_d, "C77.2", "腹腔淋巴结继发恶性肿瘤", note="regional")
            if not p["metastasis_any"] and chance(r, 0.25) and p.get("last_contact_date") and \
                    p["last_contact_date"] > dis_d + dt.timedelta(days=20):
                dd = dis_d + dt.timedelta(days=rint(r, 10, (p["last_contact_date"] - dis_d).days))
                self.dx(out, p, None, dd, "C79.5", "骨继发恶性肿瘤", note="after_discharge")
        elif not o.malignant and o.category == "nonmalignant_dx_after":
            # malignancy first coded after the implant admission
            self.dx(out, p, None, dis_d + dt.timedelta(days=40), "C34.900x001", "肺恶性肿瘤", note="late")
        pon = p.get("pain_onset_date")
        if pon is not None:
            if not o.malignant:
                code, name = pick(r, NONMALIGNANT_PAIN)
            elif p["pain_preceded_cancer"]:
                code, name = pick(r, PAIN_CODES_OTHER)
            else:
                code, name = pick(r, PAIN_CODES_CANCER + PAIN_CODES_OTHER[:2])
            self.dx(out, p, None, pon, code, name, note="pain_onset")
            if o.malignant:
                self.dx(out, p, adm_id, max(adm_d, pon), "G89.3", "癌性疼痛", note="pain")
            else:
                self.dx(out, p, adm_id, max(adm_d, pon), *pick(r, NONMALIGNANT_PAIN), note="pain")
        for code, name in [COMORBID[i] for i in r.permutation(len(COMORBID))[: rint(r, 0, 2)]]:
            self.dx(out, p, adm_id, adm_d, code, name, note="comorbid")

        # ---- treatment history ------------------------------------------------
        self.history(out, p, adm_d)

        # ---- itt trials ------------------------------------------------------
        self.itts(out, p, adm_id, admit, start, prior_adms)

        # ---- procedures and implant -----------------------------------------
        proc = self.ids.next("procedures")
        self._row(out, "procedures", impl_d, pid, procedure_id=proc, patient_id=pid, admission_id=adm_id,
                  procedure_code="86.0600",
                  procedure_name=pick(r, ["鞘内药物输注系统植入术", "全植入式鞘内药物输注泵植入术",
                                          "SynchroMed II 鞘内泵植入术"]),
                  start_time=start, end_time=end)
        self._row(out, "procedures", impl_d, pid, procedure_id=self.ids.next("procedures"), patient_id=pid,
                  admission_id=adm_id, procedure_code="03.9000", procedure_name="鞘内导管置入术",
                  start_time=start + dt.timedelta(minutes=10), end_time=end - dt.timedelta(minutes=15))
        ins = p.get("insertion_level")
        tip = p.get("catheter_tip_level")
        exp = p.get("explant_date")
        self._row(out, "idds_implants", impl_d, pid, pending={"explant_date": exp, "explant_reason": exp} if exp else {},
                  implant_id=p["implant_id"], patient_id=pid, procedure_id=proc,
                  device_model=p.get("device_model") or "SynchroMed II 8637-20", indication=o.indication,
                  implant_reason=p.get("implant_reason") or "inadequate_relief",
                  is_replacement="yes" if o.is_replacement else "no",
                  insertion_level=None if ("insertion" in o.drop or not ins) else render_level(ins, r, self.used),
                  catheter_tip_level=None if ("tip" in o.drop or not tip) else render_tip(tip, r, self.used),
                  catheter_direction="cephalad" if p["catheter_cephalad"] else "caudad",
                  explant_date=exp, explant_reason="切口愈合不良，囊袋感染\n予取出泵" if exp else None)
        # ---- pump programs --------------------------------------------------
        if "programs" not in o.drop and p.get("idds_drug"):
            self.programs(out, p, end)
        # ---- medication orders ---------------------------------------------
        self.orders(out, p, adm_id, admit, start, end, discharge)
        # ---- adverse events -------------------------------------------------
        self.events(out, p, adm_id, impl_d, dis_d)
        # ---- later admissions: explant, revision ---------------------------
        if exp:
            aid = self.ids.next("admissions")
            a0 = exp - dt.timedelta(days=2)
            self._row(out, "admissions", a0, pid, tag="explant", admission_id=aid, patient_id=pid,
                      admit_time=at(a0, 9, 0), discharge_time=at(exp + dt.timedelta(days=3), 10, 0),
                      department="疼痛科", arrival_mode="walk", discharge_status="alive",
                      total_charge=D("18650.40"), self_pay=D("5120.00"))
            self._row(out, "procedures", exp, pid, procedure_id=self.ids.next("procedures"), patient_id=pid,
                      admission_id=aid, procedure_code="86.0500", procedure_name="鞘内泵取出术",
                      start_time=at(exp, 9, 30), end_time=at(exp, 10, 40))
        if o.later_revision:
            self.revision(out, p, dis_d)
        # ---- follow-ups ------------------------------------------------------
        self.followups(out, p, dis_d)
        return out

    # -- pieces -------------------------------------------------------------------
    def dx(self, out, p, adm, when, code, name=None, note=""):
        if name is None:
            name = CANCER_NAMES.get(code[:3], "恶性肿瘤")
        code = self.national(code)
        self._row(out, "diagnoses", when, p["patient_id"], tag=note, diagnosis_id=self.ids.next("diagnoses"),
                  patient_id=p["patient_id"], admission_id=adm, diagnosis_date=when, icd10_code=code,
                  diagnosis_name=name)

    def national(self, code: str) -> str:
        """Render an ICD-10 code as the hospital would: national extension, or no dot."""
        r = self.r
        if "x" in code or len(code) > 6:
            return code
        base = code if "." in code else (code[:3] + "." + code[3:] if len(code) > 3 else code)
        if "." not in base:
            f = pick(r, ["plain", "ext"])
            self.used.add(f"icd:{f}")
            return base if f == "plain" else base + ".x00"
        head, tail = base.split(".")
        f = pick(r, ["plain", "ext", "ext2", "nodot"])
        self.used.add(f"icd:{f}")
        if f == "plain":
            return base
        if f == "ext":
            return f"{head}.{tail[:1]}{'0' * (3 - len(tail[:1]))}x001"
        if f == "ext2":
            return f"{head}.{(tail + '00')[:3]}"
        return head + tail

    def height(self, out, p, adm, when, h):
        r = self.r
        if chance(r, 0.3):
            self.used.add("height:m")
            self.meas(out, p, adm, when, "height", h / 100, "m")
        else:
            self.meas(out, p, adm, when, "height", h, "cm")

    def weight(self, out, p, adm, when, w):
        if chance(self.r, 0.3):
            self.used.add("weight:斤")
            self.meas(out, p, adm, when, "weight", w * 2, "斤")
        else:
            self.meas(out, p, adm, when, "weight", w, "kg")

    def score(self, out, p, adm, when, item, val, note=""):
        self.meas(out, p, adm, when, item, D(int(val)), "分" if chance(self.r, 0.5) else None, note=note)

    def history(self, out, p, adm_d):
        r = self.r
        lo = p.get("cancer_dx_date") or adm_d - dt.timedelta(days=365)
        types = []
        if p["prior_surgery"]:
            types.append("surgery")
        if p["prior_chemoradiotherapy"]:
            types += pick(r, [["chemotherapy"], ["radiotherapy"], ["chemotherapy", "radiotherapy"]])
        if p["prior_immunotherapy"]:
            types.append("immunotherapy")
        if p["prior_pain_intervention"]:
            types.append("pain_intervention")
        if chance(r, 0.2):
            types.append("targeted")
        notes = {"surgery": "行根治性切除术，术后病理：腺癌", "chemotherapy": "化疗4周期（方案：\"紫杉醇+卡铂\"）",
                 "radiotherapy": "局部放疗，DT 30Gy/10f", "immunotherapy": "PD-1抑制剂治疗, 共6程",
                 "targeted": "口服靶向药物", "pain_intervention": "射频消融术，疼痛短暂缓解"}
        for t in types:
            span = max(1, (adm_d - lo).days - 3)
            d = lo + dt.timedelta(days=rint(r, 0, span - 1)) if span > 1 else adm_d - dt.timedelta(days=2)
            if d >= adm_d:
                d = adm_d - dt.timedelta(days=2)
            val = d
            if (d.year, d.month) < (adm_d.year, adm_d.month) and chance(r, 0.2):
                val = (d, "month")
            self._row(out, "treatment_history", adm_d, p["patient_id"], history_id=self.ids.next("treatment_history"),
                      patient_id=p["patient_id"], treatment_type=t, start_date=val, note=notes[t])
        if p["prior_pain_intervention"] and (adm_d - lo).days > 30:
            d = adm_d - dt.timedelta(days=rint(r, 15, min(200, (adm_d - lo).days)))
            self._row(out, "procedures", d, p["patient_id"], procedure_id=self.ids.next("procedures"),
                      patient_id=p["patient_id"], admission_id=None, procedure_code="03.9600",
                      procedure_name="脊神经射频消融术", start_time=at(d, 14, 0), end_time=at(d, 15, 10))

    def itts(self, out, p, adm_id, admit, start, prior_adms):
        r = self.r
        n = p.get("itt_count") or 0
        times = []
        if n >= 1:
            if chance(r, 0.7) and start - admit > dt.timedelta(hours=6):
                days = (start.date() - admit.date()).days
                t_last = at(admit.date() + dt.timedelta(days=rint(r, 0, max(0, days - 1))), rint(r, 9, 16),
                            pick(r, [0, 15, 30]))
                if not admit + dt.timedelta(hours=1) <= t_last <= start - dt.timedelta(hours=3):
                    t_last = admit + dt.timedelta(hours=2)
                in_adm = True
            else:
                t_last = at(start.date() - dt.timedelta(days=rint(r, 7, 60)), rint(r, 9, 15), 0)
                in_adm = False
            times.append((t_last, in_adm))
            for _ in range(1, n):
                t = times[-1][0] - dt.timedelta(days=rint(r, 2, 10), hours=rint(r, 0, 3))
                if (start - t).days >= 85:
                    t = start - dt.timedelta(days=80)
                times.append((t, t >= admit))
        drug, dose = p.get("itt_drug"), p.get("itt_dose_mg")
        for i, (t, in_adm) in enumerate(times):
            if i == 0:
                d_drug, d_dose = drug, dose
            else:
                d_drug = pick(r, ["morphine", "hydromorphone"])
                d_dose = D("0.1") if d_drug == "morphine" else D("0.02")
            self.trial(out, p, t, d_drug, d_dose, "positive" if i == 0 else pick(r, ["positive", "negative"]))
            if in_adm:
                self._row(out, "procedures", t.date(), p["patient_id"], procedure_id=self.ids.next("procedures"),
                          patient_id=p["patient_id"], admission_id=adm_id, procedure_code="03.9100",
                          procedure_name="鞘内注射（试验性镇痛）", start_time=t, end_time=t + dt.timedelta(minutes=20))
                name = {"morphine": "盐酸吗啡注射液", "hydromorphone": "盐酸氢吗啡酮注射液"}.get(d_drug)
                if name and d_dose is not None:
                    # an intrathecal one-off dose in the first hours: excluded from OME by route
                    self.order(out, p, adm_id, name, d_dose, "mg", "IT", "st", "temporary", t, note="it")
        if chance(r, 0.12):   # an old trial outside the 90-day window
            t = at(start.date() - dt.timedelta(days=rint(r, 120, 300)), 10, 0)
            self.trial(out, p, t, "morphine", D("0.2"), "negative")

    def trial(self, out, p, t, drug, dose, response):
        unit = "mg"
        if dose is not None and drug == "hydromorphone" and chance(self.r, 0.6):
            dose, unit = dose * 1000, "ug"
            self.used.add("itt:ug")
        self._row(out, "itt_trials", t.date(), p["patient_id"], trial_id=self.ids.next("itt_trials"),
                  patient_id=p["patient_id"], trial_time=t, drug=drug, dose=dose, dose_unit=unit, response=response)

    def programs(self, out, p, end):
        r = self.r
        drug = p["idds_drug"]
        dose = p.get("initial_daily_dose_mg") or D("0.5")
        conc = {"morphine": pick(r, ["1", "2", "2", "5"]), "hydromorphone": pick(r, ["0.5", "1", "2"]),
                "bupivacaine": pick(r, ["5", "10"]), "morphine+bupivacaine": pick(r, ["1", "2"])}[drug]
        t = end + dt.timedelta(minutes=rint(r, 2, 10) * 10)
        last = p.get("death_date") or p.get("explant_date") or p.get("last_contact_date") or CUTOFF
        last = min(last, CUTOFF)
        k = 0
        while True:
            unit = "mg/d"
            val = dose
            if (drug == "hydromorphone" and chance(r, 0.5)) or (drug == "morphine" and chance(r, 0.08)):
                unit, val = "ug/d", dose * 1000
                self.used.add("pump:ug")
            self._row(out, "pump_programs", t.date(), p["patient_id"], tag="initial" if k == 0 else "refill",
                      program_id=self.ids.next("pump_programs"), implant_id=p["implant_id"], programmed_at=t,
                      drug=drug, concentration=D(conc), daily_dose=val, daily_dose_unit=unit)
            k += 1
            t = at(t.date() + dt.timedelta(days=rint(r, 25, 60)), rint(r, 9, 16), 0)
            if t.date() >= last or k > 8:
                break
            dose = (dose * D(pick(r, ["1.2", "1.25", "1.5", "1"]))).quantize(D("0.001")).normalize()

    # -- opioids ------------------------------------------------------------------
    def regimen(self, target: Decimal):
        """Long-term products and temporary doses whose OME equals ``target`` exactly."""
        r = self.r
        lts = []
        rest = target
        if target >= 20:
            cands = [q for q in LONG_TERM if lt_daily(q) <= target]
            n = 1 if target < 150 else rint(r, 1, 2)
            for _ in range(n):
                cands = [q for q in LONG_TERM if lt_daily(q) <= rest]
                if not cands:
                    break
                # prefer products that cover most of what is left
                weights = np.array([float(lt_daily(q)) for q in cands]) ** 2
                q = cands[int(r.choice(len(cands), p=weights / weights.sum()))]
                lts.append(q)
                rest -= lt_daily(q)
                if rest < 20:
                    break
        temps = []   # (name, dose, unit, route)
        if rest > 0:
            # the residue: temporary doses in 72 h, summed and divided by 3
            if rest >= 10 and chance(self.r, 0.3):
                k = min(int(rest // 5), rint(r, 1, 3))        # fentanyl 50 μg IV: 50 × 0.3 / 3 = 5
                for _ in range(k):
                    temps.append(("枸橼酸芬太尼注射液", D(50), "ug", "IV"))
                rest -= 5 * k
            if rest > 0 and chance(r, 0.5):
                # parenteral morphine: dose × 3 / 3 = dose
                left = rest
                while left > 0:
                    d = min(left, D(pick(r, [5, 10, 10])))
                    temps.append(("盐酸吗啡注射液", d, "mg", pick(r, ["IV", "SC", "SC", "IM"])))
                    left -= d
            elif rest > 0:
                left = rest * 3                                  # oral morphine mg in 72 h
                while left > 0:
                    d = min(left, D(pick(r, [10, 20, 30])))
                    temps.append(("盐酸吗啡片", d, "mg", "PO"))
                    left -= d
        return lts, temps

    def orders(self, out, p, adm_id, admit, start, end, discharge):
        r = self.r
        target = p.get("baseline_ome_mg_per_day") or ZERO
        stay_h = (discharge - admit).total_seconds() / 3600
        lts, temps = self.regimen(target) if target > 0 else ([], [])
        for q in lts:
            name, dose, unit, route, freq, per_day, factor = q
            s = admit + dt.timedelta(minutes=rint(r, 3, 36) * 10)
            e = None
            if chance(r, 0.6):
                e = start - dt.timedelta(minutes=pick(r, [0, 30, 60]))
                if e <= s:
                    e = discharge
            elif chance(r, 0.5):
                e = discharge
            self.order(out, p, adm_id, name, dose, unit, route, freq, "long_term", s, e)
        window = min(70.0, stay_h - 0.5)
        for name, dose, unit, route in temps:
            t = admit + dt.timedelta(minutes=int(r.integers(45, max(46, int(window * 60)))))
            t = t.replace(second=0)
            self.order(out, p, adm_id, name, dose, unit, route, pick(r, ["st", "prn"]), "temporary", t)
        # decoys that must not count: a titration after 24 h, rescue doses after 72 h, outpatient script
        if target > 0 and stay_h > 40 and chance(r, 0.4):
            s = admit + dt.timedelta(hours=rint(r, 27, int(min(stay_h, 60))) - 1)
            if s < discharge:
                self.order(out, p, adm_id, "硫酸吗啡缓释片", "30", "mg", "PO", "q12h", "long_term", s, None,
                           note="titration")
        if stay_h > 80 and chance(r, 0.5):
            t = admit + dt.timedelta(hours=rint(r, 74, int(stay_h) - 2))
            self.order(out, p, adm_id, "盐酸吗啡注射液", "5", "mg", "SC", "st", "temporary", t, note="late")
        if chance(r, 0.25):
            d = admit - dt.timedelta(days=rint(r, 5, 40))
            self.order(out, p, None, "盐酸羟考酮缓释片", "10", "mg", "PO", "q12h", "long_term", at(d.date(), 10, 0),
                       at(d.date() + dt.timedelta(days=14), 10, 0), note="outpatient")
        # intrathecal: the pump fill at implant (excluded by route)
        if p.get("idds_drug") in ("morphine", "morphine+bupivacaine", "hydromorphone"):
            name = "盐酸氢吗啡酮注射液" if p["idds_drug"] == "hydromorphone" else "盐酸吗啡注射液"
            dose = p.get("initial_daily_dose_mg") or D("0.5")
            self.order(out, p, adm_id, name, dose, "mg", "IT", "qd", "long_term",
                       end + dt.timedelta(minutes=5), None, note="it")
        # adjuvants in the first 24 h
        n_adj = p.get("n_adjuvant_drugs") or 0
        classes = list(r.permutation(list(ADJUVANTS)))
        for c in classes[:n_adj]:
            prods = ADJUVANTS[c]
            for prod in ([pick(r, prods)] if chance(r, 0.8) else prods[:2]):
                name, dose, unit, route, freq = prod
                s = admit + dt.timedelta(minutes=rint(r, 6, 120) * 10)
                self.order(out, p, adm_id, name, dose, unit, route, freq, "long_term", s,
                           discharge if chance(r, 0.5) else None)
        if n_adj < 3 and stay_h > 40 and chance(r, 0.4):
            c = classes[n_adj]
            name, dose, unit, route, freq = ADJUVANTS[c][0]
            s = admit + dt.timedelta(hours=rint(r, 26, int(min(stay_h - 1, 60))))
            self.order(out, p, adm_id, name, dose, unit, route, freq, "long_term", s, None, note="late_adjuvant")
        # unrelated drugs
        for i in r.permutation(len(UNRELATED))[: rint(r, 2, 5)]:
            name, dose, unit, route, freq, kind = UNRELATED[int(i)]
            s = admit + dt.timedelta(minutes=rint(r, 6, int(max(7, stay_h * 6 - 6))) * 10)
            if s >= discharge:
                s = admit + dt.timedelta(hours=2)
            self.order(out, p, adm_id, name, dose, unit, route, freq, kind, s,
                       discharge if kind == "long_term" and chance(r, 0.5) else None)
        self.order(out, p, adm_id, "注射用头孢唑林钠", "1", "g", "IV", "st", "temporary",
                   start - dt.timedelta(minutes=30))

    def events(self, out, p, adm_id, impl_d, dis_d):
        r = self.r
        span = max(0, (dis_d - impl_d).days)

        def ev(kind, d, adm=adm_id, note=None):
            self._row(out, "adverse_events", d, p["patient_id"], event_id=self.ids.next("adverse_events"),
                      patient_id=p["patient_id"], admission_id=adm, event_date=d, event_type=kind,
                      note=note if note is not None else pick(r, NOTES + [None]))

        def inside():
            return impl_d + dt.timedelta(days=rint(r, min(1, span), span))
        if p["comp_pdph"]:
            ev("pdph", inside())
        if p["comp_fever"]:
            ev("fever", inside())
        if p["comp_urinary_retention_constipation"]:
            ev(pick(r, ["urinary_retention", "constipation"]), inside())
        if p["comp_infection"]:
            ev("infection", inside())
        if p["comp_poor_wound_healing"]:
            if p.get("explant_date"):
                ev("poor_wound_healing", p["explant_date"] - dt.timedelta(days=20), None, "切口渗液，愈合不良")
            else:
                ev("poor_wound_healing", inside())
        if p["in_hospital_death"]:
            ev("death", dis_d, note="术后第1天死亡，家属签字")
        if chance(r, 0.05):
            ev("csf_leak", inside())
        lc = p.get("last_contact_date")
        if not p["comp_fever"] and lc and lc > dis_d + dt.timedelta(days=10) and chance(r, 0.15):
            ev("fever", dis_d + dt.timedelta(days=rint(r, 3, (lc - dis_d).days)), None, "出院后发热，社区诊所处理")

    def revision(self, out, p, dis_d):
        """A later pump/catheter revision recorded as a replacement implant (never the index)."""
        r = self.r
        lc = p.get("death_date") or p.get("last_contact_date") or CUTOFF
        if lc <= dis_d + dt.timedelta(days=30):
            return
        d = dis_d + dt.timedelta(days=rint(r, 10, (lc - dis_d).days - 8))
        aid = self.ids.next("admissions")
        self._row(out, "admissions", d, p["patient_id"], tag="revision", admission_id=aid, patient_id=p["patient_id"],
                  admit_time=at(d, 9, 0), discharge_time=at(d + dt.timedelta(days=3), 10, 0), department="疼痛科",
                  arrival_mode="walk", discharge_status="alive", total_charge=D("61234.50"), self_pay=D("15000.00"))
        proc = self.ids.next("procedures")
        t = at(d + dt.timedelta(days=1), 9, 0)
        self._row(out, "procedures", t.date(), p["patient_id"], procedure_id=proc, patient_id=p["patient_id"],
                  admission_id=aid, procedure_code="86.0600", procedure_name="鞘内导管翻修术（更换导管）",
                  start_time=t, end_time=t + dt.timedelta(minutes=70))
        iid = self.ids.next("idds_implants")
        self._row(out, "idds_implants", t.date(), p["patient_id"], tag="revision", implant_id=iid,
                  patient_id=p["patient_id"], procedure_id=proc, device_model=p.get("device_model") or "SynchroMed II 8637-20",
                  indication="cancer_pain", implant_reason="inadequate_relief", is_replacement="yes",
                  insertion_level=render_level("L3-L4", r, self.used), catheter_tip_level="T8",
                  catheter_direction="cephalad", explant_date=None, explant_reason=None)

    def followups(self, out, p, dis_d):
        r = self.r
        pid = p["patient_id"]
        status = p.get("followup_status")
        resp = p.get("respondent") or "family"
        dd = p.get("death_date")
        lc = p.get("last_contact_date") or dis_d

        def fu(d, outcome, vital=None, death=None, nrs=None, sat=None, reason=None, opi=None, rsp=None):
            self._row(out, "followups", d, pid, followup_id=self.ids.next("followups"), patient_id=pid,
                      contact_date=d, outcome=outcome, respondent=rsp if outcome == "reached" else None,
                      vital_status=vital, death_date=death, nrs=nrs, satisfied=sat,
                      dissatisfaction_reason=reason, systemic_opioid=opi)

        if status == "periop_death" or p["in_hospital_death"]:
            return
        if status == "lost_or_refused":
            d = dis_d
            for _ in range(rint(r, 1, 3)):
                d = d + dt.timedelta(days=rint(r, 14, 60))
                if d > CUTOFF:
                    break
                fu(d, pick(r, ["lost", "lost", "refused"]))
            return
        sat = p.get("satisfied")
        sat_code = None if sat is None else ("yes" if sat else "no")
        reason = p.get("dissatisfaction_reason") if sat is False else None
        opi = p.get("systemic_opioid_after")
        nrs = p.get("followup_nrs")
        contacts = []   # (date, vital, death)
        if lc > dis_d:
            first = dis_d + dt.timedelta(days=rint(r, 14, 42))
            if first < lc and (lc - dis_d).days > 60:
                contacts.append(first)
                mid = first
                while (lc - mid).days > 120 and len(contacts) < 5:
                    mid = mid + dt.timedelta(days=rint(r, 60, 110))
                    contacts.append(mid)
            contacts.append(lc)
        # a failed attempt before the first reached contact
        if contacts and chance(r, 0.2) and (contacts[0] - dis_d).days > 3:
            fu(dis_d + dt.timedelta(days=rint(r, 1, (contacts[0] - dis_d).days - 1)), "lost")
        rows = [(d, "alive", None) for d in contacts]
        if dd is not None and (p.get("os_event") == 1 or status == "followed" or status == "explanted"):
            rep = min(CUTOFF, dd + dt.timedelta(days=rint(r, 1, 25)))
            rows.append((rep, "dead", dd))
        for i, (d, vital, death) in enumerate(rows):
            last = i == len(rows) - 1
            self._row(out, "followups", d, pid, followup_id=self.ids.next("followups"), patient_id=pid,
                      contact_date=d, outcome="reached", respondent=resp, vital_status=vital, death_date=death,
                      nrs=D(nrs) if (i == 0 and nrs is not None) else (
                          D(max(0, nrs + pick(r, [-1, 0, 1]))) if nrs is not None and vital == "alive" and i > 0
                          and chance(r, 0.5) else None),
                      satisfied=sat_code if last else None,
                      dissatisfaction_reason=reason if last else None,
                      systemic_opioid=opi if last else None)


PAIN_SITE_LABELS_CN = {"lumbosacral": "腰骶部", "abdomen": "腹部", "back": "背部", "lower_limb": "下肢",
                       "perineum": "会阴部", "chest": "胸部", "head_neck": "头颈部", "upper_limb": "上肢"}


# ---------------------------------------------------------------------------
# identifiers and PHI
# ---------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志明海燕文辉春梅立新淑珍宝凤德福荣庆金林亮成东"


def id_number(birth: dt.date, sex: str, r: np.random.Generator) -> str:
    region = pick(r, ["110105", "110108", "130102", "120101", "370102", "410105", "210102"])
    seq = rint(r, 0, 99) * 10 + (pick(r, [1, 3, 5, 7, 9]) if sex == "M" else pick(r, [0, 2, 4, 6, 8]))
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    s = sum(int(c) * k for c, k in zip(body, w, strict=True)) % 11
    return body + "10X98765432"[s]


def phi(p: dict, r: np.random.Generator) -> None:
    p["_name"] = pick(r, SURNAMES) + "".join(pick(r, GIVEN) for _ in range(rint(r, 1, 2)))
    p["_idno"] = id_number(p["birth_date"], p.get("sex") or "M", r)
    p["_phone"] = "1" + pick(r, ["39", "38", "58", "86", "35", "52"]) + f"{rint(r, 0, 99999999):08d}"
