"""Stage B formatting: the extract contract's schema and every surface variant.

The generator's own copy of the contract (file names, Chinese aliases, column
types, enumeration labels) and the functions that turn a canonical value
(``datetime``, ``date``, ``Decimal``, ``int``, ``str`` or ``None``) into the text a
hospital export would hold. Nothing here is shared with the pipeline.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------
# Schema: canonical stem -> (Chinese file alias, key column, [(column, alias, type)])
# type: id | text | date | datetime | month_date | number | int | value | enum:<name>
# ---------------------------------------------------------------------------

SCHEMA: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "patients": ("患者信息", "patient_id", [
        ("patient_id", "病案号", "id"),
        ("name", "姓名", "text"),
        ("id_number", "身份证号", "id"),
        ("phone", "联系电话", "id"),
        ("sex", "性别", "enum:sex"),
        ("birth_date", "出生日期", "date"),
        ("insurance_type", "医保类型", "enum:insurance"),
    ]),
    "admissions": ("住院记录", "admission_id", [
        ("admission_id", "住院号", "id"),
        ("patient_id", "病案号", "id"),
        ("admit_time", "入院时间", "datetime"),
        ("discharge_time", "出院时间", "datetime"),
        ("department", "科室", "text"),
        ("arrival_mode", "入院方式", "enum:arrival"),
        ("discharge_status", "离院方式", "enum:discharge"),
        ("total_charge", "总费用", "money"),
        ("self_pay", "自付费用", "money"),
    ]),
    "diagnoses": ("诊断", "diagnosis_id", [
        ("diagnosis_id", "诊断编号", "id"),
        ("patient_id", "病案号", "id"),
        ("admission_id", "住院号", "id"),
        ("diagnosis_date", "诊断日期", "date"),
        ("icd10_code", "诊断编码", "id"),
        ("diagnosis_name", "诊断名称", "text"),
    ]),
    "measurements": ("评估记录", "measurement_id", [
        ("measurement_id", "记录编号", "id"),
        ("patient_id", "病案号", "id"),
        ("admission_id", "住院号", "id"),
        ("measured_at", "测量时间", "datetime"),
        ("item", "项目", "enum:item"),
        ("value", "结果", "value"),
        ("unit", "单位", "enum:munit"),
    ]),
    "medication_orders": ("医嘱", "order_id", [
        ("order_id", "医嘱号", "id"),
        ("patient_id", "病案号", "id"),
        ("admission_id", "住院号", "id"),
        ("drug_name", "药品名称", "text"),
        ("dose", "单次剂量", "dose"),
        ("dose_unit", "剂量单位", "enum:dose_unit"),
        ("route", "给药途径", "enum:route"),
        ("frequency", "频次", "enum:freq"),
        ("order_kind", "医嘱类型", "enum:order_kind"),
        ("start_time", "开始时间", "datetime"),
        ("end_time", "停止时间", "datetime"),
    ]),
    "procedures": ("手术操作", "procedure_id", [
        ("procedure_id", "操作编号", "id"),
        ("patient_id", "病案号", "id"),
        ("admission_id", "住院号", "id"),
        ("procedure_code", "操作编码", "id"),
        ("procedure_name", "操作名称", "text"),
        ("start_time", "开始时间", "datetime"),
        ("end_time", "结束时间", "datetime"),
    ]),
    "idds_implants": ("鞘内泵植入", "implant_id", [
        ("implant_id", "植入编号", "id"),
        ("patient_id", "病案号", "id"),
        ("procedure_id", "操作编号", "id"),
        ("device_model", "设备型号", "text"),
        ("indication", "适应症", "enum:indication"),
        ("implant_reason", "植入原因", "enum:implant_reason"),
        ("is_replacement", "是否更换", "enum:yesno"),
        ("insertion_level", "穿刺间隙", "level"),
        ("catheter_tip_level", "导管尖端位置", "tip"),
        ("catheter_direction", "导管方向", "enum:direction"),
        ("explant_date", "取出日期", "date"),
        ("explant_reason", "取出原因", "text"),
    ]),
    "treatment_history": ("既往治疗", "history_id", [
        ("history_id", "记录编号", "id"),
        ("patient_id", "病案号", "id"),
        ("treatment_type", "治疗类型", "enum:treatment"),
        ("start_date", "开始日期", "month_date"),
        ("note", "备注", "text"),
    ]),
    "itt_trials": ("鞘内试验", "trial_id", [
        ("trial_id", "试验编号", "id"),
        ("patient_id", "病案号", "id"),
        ("trial_time", "试验时间", "datetime"),
        ("drug", "药物", "enum:it_drug"),
        ("dose", "剂量", "dose"),
        ("dose_unit", "单位", "enum:dose_unit"),
        ("response", "反应", "enum:response"),
    ]),
    "pump_programs": ("泵程控记录", "program_id", [
        ("program_id", "程控编号", "id"),
        ("implant_id", "植入编号", "id"),
        ("programmed_at", "程控时间", "datetime"),
        ("drug", "药物", "enum:it_drug"),
        ("concentration", "浓度", "number"),
        ("daily_dose", "日剂量", "dose"),
        ("daily_dose_unit", "日剂量单位", "enum:daily_unit"),
    ]),
    "adverse_events": ("并发症", "event_id", [
        ("event_id", "事件编号", "id"),
        ("patient_id", "病案号", "id"),
        ("admission_id", "住院号", "id"),
        ("event_date", "发生日期", "date"),
        ("event_type", "事件类型", "enum:event"),
        ("note", "备注", "text"),
    ]),
    "followups": ("随访", "followup_id", [
        ("followup_id", "随访编号", "id"),
        ("patient_id", "病案号", "id"),
        ("contact_date", "随访日期", "date"),
        ("outcome", "随访结果", "enum:outcome"),
        ("respondent", "应答人", "enum:respondent"),
        ("vital_status", "生存状态", "enum:vital"),
        ("death_date", "死亡日期", "date"),
        ("nrs", "疼痛评分", "score"),
        ("satisfied", "是否满意", "enum:satisfied"),
        ("dissatisfaction_reason", "不满意原因", "text"),
        ("systemic_opioid", "全身阿片用药", "enum:opioid_after"),
    ]),
}

FILE_ORDER = list(SCHEMA)

# enumeration name -> code -> list of accepted spellings (first = canonical English code)
ENUMS: dict[str, dict[str, list[str]]] = {
    "sex": {"M": ["M", "男", "1"], "F": ["F", "女", "2"]},
    "insurance": {"employee": ["employee", "城镇职工医保"], "resident": ["resident", "城乡居民医保"],
                  "self_pay": ["self_pay", "自费"], "commercial": ["commercial", "商业保险"],
                  "other": ["other", "其他"]},
    "arrival": {"walk": ["walk", "步行"], "wheelchair": ["wheelchair", "轮椅"], "cart": ["cart", "平车"]},
    "discharge": {"alive": ["alive", "出院", "好转"], "dead": ["dead", "死亡"], "transfer": ["transfer", "转院"]},
    "item": {"height": ["height", "身高"], "weight": ["weight", "体重"], "nrs": ["nrs", "疼痛评分"],
             "adl": ["adl", "ADL评分"], "pressure_sore": ["pressure_sore", "压疮"],
             "indwelling_line": ["indwelling_line", "留置管路"], "pain_site": ["pain_site", "疼痛部位"]},
    "munit": {"cm": ["cm"], "m": ["m"], "kg": ["kg"], "斤": ["斤"], "分": ["分"]},
    "dose_unit": {"mg": ["mg"], "g": ["g"], "ug": ["μg", "ug", "mcg"], "ug/h": ["μg/h", "mcg/h"],
                  "mg/h": ["mg/h"]},
    "route": {"PO": ["PO", "口服"], "IV": ["IV", "静脉"], "SC": ["SC", "皮下"], "IM": ["IM", "肌注"],
              "TD": ["TD", "透皮"], "IT": ["IT", "鞘内"], "PR": ["PR", "直肠"], "SL": ["SL", "舌下"]},
    "freq": {f: [f] for f in ["qd", "bid", "tid", "qid", "q4h", "q6h", "q8h", "q12h", "q72h", "qn",
                              "prn", "st"]} | {"continuous": ["continuous", "持续"]},
    "order_kind": {"long_term": ["long_term", "长期"], "temporary": ["temporary", "临时"]},
    "indication": {"cancer_pain": ["cancer_pain", "癌痛"], "nonmalignant_pain": ["nonmalignant_pain", "非癌性疼痛"]},
    "implant_reason": {"inadequate_relief": ["inadequate_relief", "镇痛不佳"],
                       "side_effects": ["side_effects", "不良反应不耐受"]},
    "yesno": {"yes": ["yes", "是"], "no": ["no", "否"]},
    "direction": {"cephalad": ["cephalad", "向上"], "caudad": ["caudad", "向下"]},
    "treatment": {"surgery": ["surgery", "手术"], "chemotherapy": ["chemotherapy", "化疗"],
                  "radiotherapy": ["radiotherapy", "放疗"], "immunotherapy": ["immunotherapy", "免疫治疗"],
                  "targeted": ["targeted", "靶向治疗"], "pain_intervention": ["pain_intervention", "介入镇痛"]},
    "it_drug": {"morphine": ["morphine", "吗啡"], "hydromorphone": ["hydromorphone", "氢吗啡酮"],
                "bupivacaine": ["bupivacaine", "布比卡因"],
                "morphine+bupivacaine": ["morphine+bupivacaine", "吗啡+布比卡因"]},
    "response": {"positive": ["positive", "有效"], "negative": ["negative", "无效"]},
    "daily_unit": {"mg/d": ["mg/d"], "ug/d": ["μg/d", "ug/d", "mcg/d"]},
    "event": {"pdph": ["pdph", "低颅压头痛"], "fever": ["fever", "发热"],
              "urinary_retention": ["urinary_retention", "尿潴留"], "constipation": ["constipation", "便秘"],
              "poor_wound_healing": ["poor_wound_healing", "切口愈合不良"], "infection": ["infection", "感染"],
              "csf_leak": ["csf_leak", "脑脊液漏"], "pump_malfunction": ["pump_malfunction", "泵故障"],
              "catheter_complication": ["catheter_complication", "导管并发症"], "death": ["death", "死亡"]},
    "outcome": {"reached": ["reached", "已联系"], "lost": ["lost", "失访"], "refused": ["refused", "拒访"]},
    "respondent": {"patient": ["patient", "本人"], "family": ["family", "家属"]},
    "vital": {"alive": ["alive", "存活"], "dead": ["dead", "死亡"]},
    "satisfied": {"yes": ["yes", "满意"], "no": ["no", "不满意"]},
    "opioid_after": {"stopped": ["stopped", "已停用"], "lt_100": ["lt_100", "口服吗啡当量<100mg/日"],
                     "ge_100": ["ge_100", "≥100mg/日"]},
}

PAIN_SITE_LABELS = {"lumbosacral": "腰骶部", "abdomen": "腹部", "back": "背部", "lower_limb": "下肢",
                    "perineum": "会阴部", "chest": "胸部", "head_neck": "头颈部", "upper_limb": "上肢"}

MISSING_TOKENS = ["", "NULL", "null", "NA", "N/A", "无", "-", "/"]
DATE_FORMS = ["iso", "slash", "cn", "compact"]
TIME_FORMS = [" hm", " hms", "Ths"]
NUMBER_FORMS = ["plain", "fixed2", "comma", "fullwidth", "unit"]
ENCODINGS = ["utf-8", "utf-8-sig", "gb18030"]

_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


# ---------------------------------------------------------------------------
# value formatting
# ---------------------------------------------------------------------------

def fmt_date(d: dt.date, form: str) -> str:
    if form == "iso":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    if form == "slash":
        return f"{d.year}/{d.month}/{d.day}"
    if form == "cn":
        return f"{d.year}年{d.month}月{d.day}日"
    if form == "compact":
        return f"{d.year:04d}{d.month:02d}{d.day:02d}"
    raise ValueError(form)


def fmt_time(t: dt.datetime, form: str) -> str:
    if form == " hm":
        assert t.second == 0
        return f" {t.hour:02d}:{t.minute:02d}"
    if form == " hms":
        return f" {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if form == "Ths":
        return f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    raise ValueError(form)


def fmt_datetime(t: dt.datetime, dform: str, tform: str) -> str:
    if t.second != 0 and tform == " hm":
        tform = " hms"
    return fmt_date(t.date(), dform) + fmt_time(t, tform)


def fmt_month(d: dt.date, form: str) -> str:
    if form in ("iso", "compact"):
        return f"{d.year:04d}-{d.month:02d}"
    return f"{d.year}年{d.month}月"


def dec_str(x: Decimal) -> str:
    """Plain positional text of a Decimal, no exponent, no trailing zeros."""
    s = format(x, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def fmt_number(x: Decimal, form: str, unit: str = "") -> str:
    s = dec_str(x)
    if form == "plain":
        return s
    if form == "fixed2":
        if -x.as_tuple().exponent > 2 and x != x.quantize(Decimal("0.01")):
            return s
        return format(x.quantize(Decimal("0.01")), "f")
    if form == "comma":
        if abs(x) < 1000 or x != x.quantize(Decimal("0.01")):
            return s
        return f"{x.quantize(Decimal('0.01')):,.2f}"
    if form == "fullwidth":
        return s.translate(_FULLWIDTH)
    if form == "unit":
        return s + unit
    raise ValueError(form)


def vary_case(s: str, r: np.random.Generator) -> str:
    """Case and surrounding-space variation of an English code."""
    k = int(r.integers(0, 8))
    if k == 0:
        s = s.upper()
    elif k == 1:
        s = s.lower()
    elif k == 2:
        s = s.title() if s.isascii() else s
    if int(r.integers(0, 6)) == 0:
        s = " " + s
    if int(r.integers(0, 6)) == 0:
        s = s + " "
    return s


# ---------------------------------------------------------------------------
# per-file style
# ---------------------------------------------------------------------------

@dataclass
class FileStyle:
    stem: str
    encoding: str = "utf-8"
    chinese_name: bool = False
    chinese_header: bool = False
    gz: bool = False
    column_order: list[str] = field(default_factory=list)
    extra_column: str | None = None          # an unknown column name (schema drift)
    updated_at: bool = False                  # carries the contract's optional updated_at
    newline: str = "\n"
    date_forms: list[str] = field(default_factory=lambda: list(DATE_FORMS))
    time_forms: list[str] = field(default_factory=lambda: list(TIME_FORMS))
    mixed: bool = True                        # per-value variation (paper profile)

    @property
    def filename(self) -> str:
        base = SCHEMA[self.stem][0] if self.chinese_name else self.stem
        return base + (".csv.gz" if self.gz else ".csv")

    def header(self) -> list[str]:
        cols = {c: a for c, a, _ in SCHEMA[self.stem][2]}
        cols["updated_at"] = "updated_at"
        out = []
        for c in self.column_order:
            if c == "__extra__":
                out.append(self.extra_column or "extra")
            else:
                out.append(cols[c] if self.chinese_header else c)
        return out


def default_order(stem: str, style_extra: bool = False, updated_at: bool = False) -> list[str]:
    cols = [c for c, _, _ in SCHEMA[stem][2]]
    if updated_at:
        cols.append("updated_at")
    if style_extra:
        cols.append("__extra__")
    return cols


def csv_field(s: str) -> str:
    if any(ch in s for ch in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


def csv_line(fields: list[str], newline: str = "\n") -> str:
    return ",".join(csv_field(f) for f in fields) + newline


def encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode(encoding)


def write_bytes(path: Path, data: bytes, gz: bool) -> bytes:
    """Write the file as delivered and return the delivered bytes."""
    if gz:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as g:
            g.write(data)
        data = buf.getvalue()
    path.write_bytes(data)
    return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# the value formatter of one file (per-value variation drawn from a seeded stream)
# ---------------------------------------------------------------------------

class Formatter:
    """Turns canonical values into contract text for one file's style."""

    def __init__(self, style: FileStyle, rng: np.random.Generator):
        self.style = style
        self.r = rng
        self.types = {c: t for c, _, t in SCHEMA[style.stem][2]}
        self.types["updated_at"] = "datetime"
        self.used: set[str] = set()      # variant tags actually written (for the truth)

    def _pick(self, seq):
        return seq[int(self.r.integers(0, len(seq)))]

    def missing(self) -> str:
        if not self.style.mixed:
            return ""
        tok = self._pick(MISSING_TOKENS)
        self.used.add(f"missing:{tok}")
        return tok

    def date(self, d: dt.date) -> str:
        form = self._pick(self.style.date_forms)
        self.used.add(f"date:{form}")
        return fmt_date(d, form)

    def datetime(self, t: dt.datetime) -> str:
        dform = self._pick(self.style.date_forms)
        tform = self._pick(self.style.time_forms)
        if t.second != 0 and tform == " hm":
            tform = " hms"
        self.used.add(f"date:{dform}")
        self.used.add(f"time:{tform}")
        return fmt_datetime(t, dform, tform)

    def enum(self, name: str, code: str) -> str:
        spellings = ENUMS[name][code]
        if not self.style.mixed:
            return spellings[0]
        s = self._pick(spellings)
        if s.isascii():
            if name in ("dose_unit", "daily_unit", "munit"):
                # units keep their case; spaces may still surround them
                if int(self.r.integers(0, 8)) == 0:
                    s = " " + s
            else:
                s2 = vary_case(s, self.r)
                if s2 != s:
                    self.used.add("enum:case_space")
                s = s2
            self.used.add("enum:english")
        else:
            self.used.add("enum:chinese")
            if int(self.r.integers(0, 10)) == 0:
                s = s + " "
                self.used.add("enum:case_space")
        if name == "dose_unit" or name == "daily_unit":
            if "μ" in s:
                self.used.add("unit:μg")
        return s

    def number(self, x: Decimal, forms: list[str], unit: str = "") -> str:
        if not self.style.mixed:
            return dec_str(x)
        form = self._pick(forms)
        s = fmt_number(x, form, unit)
        if s != dec_str(x):
            self.used.add(f"number:{form}")
        return s

    def value(self, col: str, v) -> str:
        """Default formatting of a canonical value by the column type."""
        if v is None:
            return self.missing()
        t = self.types[col]
        if isinstance(v, str) and t in ("id", "text", "value", "level", "tip"):
            return v
        if t == "date":
            return self.date(v)
        if t == "datetime":
            return self.datetime(v)
        if t == "month_date":
            if isinstance(v, tuple):      # (date, "month") month precision
                form = self._pick(self.style.date_forms)
                self.used.add("month_precision")
                return fmt_month(v[0], form)
            return self.date(v)
        if t.startswith("enum:"):
            return self.enum(t[5:], v)
        if t == "money":
            return self.number(Decimal(v), ["plain", "fixed2", "comma", "comma", "fixed2"])
        if t in ("number", "dose"):
            return self.number(Decimal(v), ["plain", "plain", "fixed2", "fullwidth"])
        if t == "score":
            return self.number(Decimal(v), ["plain", "plain", "unit", "fullwidth"], "分")
        return str(v)
