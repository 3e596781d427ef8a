"""Deliveries: split the rendered rows in time, format them, write files, manifests, truth.

``generate`` is the public entry point (re-exported by ``synth``). The paper profile
renders the latent cohort plus the non-cohort patients, splits the extract into K
deliveries in time order (rows appear in the first delivery after they exist;
fields still unknown then are empty and arrive later as a new version; some rows
are re-sent unchanged; a few are corrected; one file is re-sent byte-identical),
then writes each delivery with the per-file styles of :mod:`synth.variants`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from .render import CUTOFF, Ids, PatientRenderer, Row, latent_records, phi
from .variants import (
    ENCODINGS,
    FILE_ORDER,
    SCHEMA,
    FileStyle,
    Formatter,
    csv_line,
    default_order,
    encode,
    sha256_file,
    write_bytes,
)

TRUTH_DIR = "truth"
LANDING_DIR = "landing"


def sub_rng(seed: int, *names) -> np.random.Generator:
    key = [int(seed)] + [zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(key)


# ---------------------------------------------------------------------------
# records as written
# ---------------------------------------------------------------------------

@dataclass
class Rec:
    stem: str
    v: dict | None                                  # canonical values (None for a raw line)
    override: dict = field(default_factory=dict)    # column -> raw text written instead
    post: Callable | None = None                    # fields -> fields or full line text
    raw: str | None = None                          # full record text without the line end
    dup: bool = False                               # written twice, byte-identical
    defects: list = field(default_factory=list)     # defect dicts logged at this record's line
    dup_defects: list = field(default_factory=list)  # logged at the second copy's line
    line: int = 0
    dup_line: int = 0
    skey: str | None = None                          # sort key when there are no canonical values


# ---------------------------------------------------------------------------
# per-file styles
# ---------------------------------------------------------------------------

def choose_styles(seed: int, mixed: bool = True) -> dict[str, FileStyle]:
    r = sub_rng(seed, "styles")
    files = list(FILE_ORDER)
    perm = [files[i] for i in r.permutation(len(files))]
    styles = {s: FileStyle(stem=s, mixed=mixed) for s in files}
    for i, s in enumerate(perm):
        styles[s].encoding = ENCODINGS[i % 3]
    for s in [files[i] for i in r.permutation(len(files))][:4]:
        styles[s].chinese_name = True
    for s in [files[i] for i in r.permutation(len(files))][:5]:
        styles[s].chinese_header = True
    big = ["measurements", "medication_orders", "diagnoses"]
    for s in [big[i] for i in r.permutation(3)][:2]:
        styles[s].gz = True
    shuffled = [files[i] for i in r.permutation(len(files))][:6]
    extra = [f for f in files if f != "patients"][int(r.integers(0, len(files) - 1))]
    upd = [f for f in files if f not in ("patients", extra)][int(r.integers(0, len(files) - 2))]
    for s in files:
        st = styles[s]
        st.extra_column = pick_extra(r) if s == extra else None
        st.updated_at = s == upd
        st.column_order = default_order(s, style_extra=st.extra_column is not None, updated_at=st.updated_at)
        if s in shuffled:
            order = st.column_order
            st.column_order = [order[i] for i in r.permutation(len(order))]
    for s in [files[i] for i in r.permutation(len(files))][:2]:
        styles[s].newline = "\r\n"
    return styles


def pick_extra(r) -> str:
    return ["数据来源", "source_system", "备注2"][int(r.integers(0, 3))]


# ---------------------------------------------------------------------------
# row formatting (per file, per record)
# ---------------------------------------------------------------------------

def format_fields(fmt: Formatter, rec: Rec) -> list[str]:
    st = fmt.style
    v = rec.v
    out = []
    for col in st.column_order:
        if col == "__extra__":
            out.append(rec.override.get("__extra__", ["HIS", "EMR", "LIS", ""][int(fmt.r.integers(0, 4))]))
            continue
        if col in rec.override:
            out.append(rec.override[col])
            continue
        val = v.get(col)
        out.append(special(fmt, rec.stem, col, val, v))
    if rec.post is not None:
        out = rec.post(out, st.column_order)
    return out


def special(fmt: Formatter, stem: str, col: str, val, v: dict) -> str:
    if val is None:
        return fmt.missing()
    if stem == "measurements" and col == "value" and isinstance(val, Decimal):
        unit = v.get("unit") or ""
        forms = ["plain", "plain", "fullwidth"]
        if unit in ("kg", "斤", "分", "cm"):
            forms += ["unit", "unit"]
        if unit == "分" or (v.get("unit") is None and v.get("item") in ("nrs", "adl")):
            forms += ["unit"]
            return fmt.number(val, forms, "分")
        return fmt.number(val, forms, unit)
    if col in ("dose", "daily_dose") and isinstance(val, Decimal):
        unit = v.get("dose_unit") or ""
        forms = ["plain", "plain", "fixed2", "fullwidth"]
        if unit in ("mg", "g") and stem != "pump_programs":
            forms.append("unit")
        return fmt.number(val, forms, unit)
    if stem == "measurements" and col == "unit":
        return fmt.enum("munit", val) if val else fmt.missing()
    return fmt.value(col, val)


def render_records(fmt: Formatter, recs: list[Rec], line: int) -> tuple[list[str], int, int]:
    """Format records from physical line ``line`` on; returns (texts, record count, next line)."""
    nl = fmt.style.newline
    parts = []
    n = 0
    for rec in recs:
        if rec.raw is not None:
            text = rec.raw + nl
        else:
            fields = format_fields(fmt, rec)
            text = fields + nl if isinstance(fields, str) else csv_line(fields, nl)
        rec.line = line
        parts.append(text)
        line += text.count("\n")
        n += 1
        if rec.dup:
            rec.dup_line = line
            parts.append(text)
            line += text.count("\n")
            n += 1
    return parts, n, line


def render_file(style: FileStyle, recs: list[Rec], rng: np.random.Generator) -> tuple[bytes, int, set[str]]:
    """Format records, assign physical line numbers; returns (encoded text, record count, variants used)."""
    fmt = Formatter(style, rng)
    parts, n, _ = render_records(fmt, recs, 2)
    data = encode(csv_line(style.header(), style.newline) + "".join(parts), style.encoding)
    used = set(fmt.used)
    used.add(f"encoding:{style.encoding}")
    return data, n, used


# ---------------------------------------------------------------------------
# the delivery plan
# ---------------------------------------------------------------------------

def delivery_dates(k: int) -> list[dt.date]:
    if k <= 1:
        return [CUTOFF]
    if k == 2:
        return [dt.date(2024, 3, 6), CUTOFF]
    lo, hi = dt.date(2021, 1, 1), dt.date(2024, 1, 1)
    step = (hi - lo).days / (k - 1)
    ds = [lo + dt.timedelta(days=int(round(step * i))) for i in range(1, k - 1)]
    return ds + [dt.date(2024, 3, 6), CUTOFF]


def version(row: Row, d: dt.date, changed: dt.date | None = None) -> dict:
    """The row as exported on date ``d`` (fields not yet known are empty; updated_at = last change)."""
    v = dict(row.v)
    last = row.ship
    for col, known in row.pending.items():
        if known is not None and known > d:
            v[col] = None
        elif known is not None:
            last = max(last, known)
    last = min(max(last, changed or last), d)
    v["updated_at"] = dt.datetime(last.year, last.month, last.day, 18, 30)
    return v


@dataclass
class Plan:
    dates: list[dt.date]
    ids: list[str]
    recs: list[dict[str, list[Rec]]]
    resent: dict | None = None          # {"delivery": k, "stem": s, "from": j}
    corrections: list = field(default_factory=list)
    overlaps: dict = field(default_factory=dict)


def make_plan(rows: list[Row], k: int, seed: int, cohort_ids: set[str]) -> Plan:
    dates = delivery_dates(k)
    ids = [d.isoformat() for d in dates]
    r = sub_rng(seed, "deliveries")
    recs: list[dict[str, list[Rec]]] = [{s: [] for s in FILE_ORDER} for _ in dates]

    def first_k(d: dt.date) -> int:
        for i, x in enumerate(dates):
            if d <= x:
                return i
        return len(dates) - 1

    sent_before: dict[str, list[tuple[int, Row]]] = {s: [] for s in FILE_ORDER}
    for row in rows:
        if row.stem == "admissions" and not row.pending and row.v.get("discharge_time") is not None:
            known = row.v["discharge_time"].date()
            row.pending = {c: known for c in ("discharge_time", "discharge_status", "total_charge", "self_pay")}
        k0 = first_k(row.ship)
        ks = [k0]
        for known in row.pending.values():
            if known is not None:
                kk = first_k(known)
                if kk > k0 and kk not in ks:
                    ks.append(kk)
        for kk in sorted(ks):
            recs[kk][row.stem].append(Rec(row.stem, version(row, dates[kk])))
        sent_before[row.stem].append((sorted(ks)[-1], row))
    plan = Plan(dates, ids, recs)
    if k <= 1:
        return plan

    last = len(dates) - 1
    # corrections: a row first sent with a wrong value, corrected in the next delivery
    key_of = {s: SCHEMA[s][1] for s in FILE_ORDER}
    cw = [row for row in rows if row.stem == "measurements" and row.pid in cohort_ids
          and row.v["item"] == "weight" and row.tag == "" and first_k(row.ship) < last]
    cp = [row for row in rows if row.stem == "patients" and first_k(row.ship) < last]
    picked = [cw[int(i)] for i in sorted(r.permutation(len(cw))[:2])] + \
        [cp[int(i)] for i in sorted(r.permutation(len(cp))[:2])]
    for row in picked:
        k0 = first_k(row.ship)
        bucket = recs[k0][row.stem]
        for rec in bucket:
            if rec.v[key_of[row.stem]] == row.v[key_of[row.stem]]:
                if row.stem == "measurements":
                    rec.v = dict(rec.v, value=row.v["value"] + 10)
                    col = "value"
                else:
                    rec.v = dict(rec.v, phone=row.v["phone"][:-4] + "0000")
                    col = "phone"
                break
        recs[k0 + 1][row.stem].append(Rec(row.stem, version(row, dates[k0 + 1], dates[k0 + 1])))
        plan.corrections.append({"stem": row.stem, "key": row.v[key_of[row.stem]], "column": col,
                                 "wrong_in": ids[k0], "corrected_in": ids[k0 + 1], "patient_id": row.pid})

    # re-sent file: in the last delivery, a file without new rows, byte-identical to its last sending
    empty = [s for s in FILE_ORDER if not recs[last][s] and any(recs[j][s] for j in range(last))]
    if empty:
        s = empty[int(r.integers(0, len(empty)))]
        j = max(j for j in range(last) if recs[j][s])
        plan.resent = {"delivery": ids[last], "stem": s, "from": ids[j]}

    # overlap: later deliveries re-send a few earlier rows unchanged
    for kk in range(1, len(dates)):
        for s in FILE_ORDER:
            if not recs[kk][s] or (plan.resent and plan.resent["stem"] == s and kk == last):
                continue
            have = {rec.v[key_of[s]] for rec in recs[kk][s]}
            earlier = [row for (kf, row) in sent_before[s] if kf < kk and row.v[key_of[s]] not in have
                       and first_k(row.ship) < kk]
            if not earlier:
                continue
            n = max(1, len(earlier) // 25)
            for i in sorted(r.permutation(len(earlier))[:n]):
                row = earlier[int(i)]
                recs[kk][s].append(Rec(s, version(row, dates[kk])))
            plan.overlaps[f"{ids[kk]}/{s}"] = n
    return plan


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

def sort_key(stem: str):
    key = SCHEMA[stem][1]

    def k(rec: Rec):
        if rec.skey is not None:
            return rec.skey
        return str(rec.v.get(key) if rec.v else "")
    return k


def write_plan(plan: Plan, styles: dict[str, FileStyle], landing: Path, seed: int) -> tuple[dict, set[str]]:
    landing.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    used_all: set[str] = set()
    written: dict[tuple[str, str], Path] = {}
    for k, did in enumerate(plan.ids):
        ddir = landing / did
        ddir.mkdir(parents=True, exist_ok=True)
        files = {}
        for s in FILE_ORDER:
            st = styles[s]
            path = ddir / st.filename
            if plan.resent and plan.resent["delivery"] == did and plan.resent["stem"] == s:
                src = written[(plan.resent["from"], s)]
                path.write_bytes(src.read_bytes())
                files[st.filename] = {"rows": summary[plan.resent["from"]]["files"][st.filename]["rows"],
                                      "sha256": sha256_file(path)}
                continue
            recs = plan.recs[k][s]
            if not recs:
                continue
            data, n, used = render_file(st, recs, sub_rng(seed, "format", did, s))
            used_all |= used
            if st.gz:
                used_all.add("gz")
            write_bytes(path, data, st.gz)
            written[(did, s)] = path
            files[st.filename] = {"rows": n, "sha256": sha256_file(path)}
        manifest = {"delivery_id": did, "exported_at": f"{did}T06:00:00", "files": files}
        (ddir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                            encoding="utf-8")
        summary[did] = {"files": files}
    return summary, used_all


# ---------------------------------------------------------------------------
# the paper bundle: cohort + non-cohort rows
# ---------------------------------------------------------------------------

def load_latent(seed: int) -> pd.DataFrame:
    from .latent import build_latent  # the Stage A module (another engineer's)
    return build_latent(seed)


@dataclass
class Bundle:
    latent: pd.DataFrame
    rows: list[Row]
    noncohort: list[dict]
    cohort_ids: set[str]
    used: set[str]
    ids: Ids
    records: list[dict]


def build_bundle(seed: int, latent: pd.DataFrame | None, patients: int | None, dirty: bool = False) -> Bundle:
    from .noncohort import build_noncohort
    if latent is None:
        latent = load_latent(seed)
    recs = latent_records(latent)
    ids = Ids()
    taken = {p["patient_id"] for p in recs}
    for p in recs:
        ids.taken.add(str(p["admission_id"]))
        ids.taken.add(str(p["implant_id"]))
    r = sub_rng(seed, "render")
    rr = PatientRenderer(ids, r)
    from .render import Opts
    rows: list[Row] = []
    # a few followed cohort patients get a later revision implant (is_replacement = yes)
    followed = [i for i, p in enumerate(recs) if p.get("followup_status") == "followed"]
    revision = {followed[int(i)] for i in r.permutation(len(followed))[:3]} if followed else set()
    for i, p in enumerate(recs):
        phi(p, r)
        rows.extend(rr.render(p, Opts(later_revision=i in revision)))
    nc_rows, nc_truth = build_noncohort(rr, sub_rng(seed, "noncohort"), taken, patients, len(recs))
    rows.extend(nc_rows)
    fix_patient_ship(rows)
    return Bundle(latent, rows, nc_truth, {p["patient_id"] for p in recs}, rr.used, ids, recs)


def fix_patient_ship(rows: list[Row]) -> None:
    first: dict[str, dt.date] = {}
    for row in rows:
        if row.pid:
            first[row.pid] = min(first.get(row.pid, row.ship), row.ship)
    for row in rows:
        if row.stem == "patients":
            row.ship = first[row.pid]


# ---------------------------------------------------------------------------
# truth
# ---------------------------------------------------------------------------

def latent_csv(latent: pd.DataFrame) -> str:
    df = latent.copy()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            if (df[c].dropna().dt.normalize() == df[c].dropna()).all():
                df[c] = df[c].dt.strftime("%Y-%m-%d")
            else:
                df[c] = df[c].dt.strftime("%Y-%m-%dT%H:%M:%S")
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def achieved_stats(recs: list[dict]) -> dict:
    def cnt(col):
        out: dict = {}
        for p in recs:
            k = p.get(col)
            k = "null" if k is None else str(k)
            out[k] = out.get(k, 0) + 1
        return dict(sorted(out.items()))

    def mean_sd(col):
        x = np.array([float(p[col]) for p in recs if p.get(col) is not None])
        return {"n": int(x.size), "mean": round(float(x.mean()), 4) if x.size else None,
                "sd": round(float(x.std(ddof=1)), 4) if x.size > 1 else None}

    return {
        "n": len(recs),
        "implant_year": cnt("implant_year"), "sex": cnt("sex"), "cancer_site": cnt("cancer_site"),
        "followup_status": cnt("followup_status"), "itt_count": cnt("itt_count"), "idds_drug": cnt("idds_drug"),
        "insertion_level": cnt("insertion_level"), "catheter_tip_level": cnt("catheter_tip_level"),
        "age_years": mean_sd("age_years"), "bmi": mean_sd("bmi"), "adl_barthel": mean_sd("adl_barthel"),
        "baseline_nrs": mean_sd("baseline_nrs"), "followup_nrs": mean_sd("followup_nrs"),
        "surgery_duration_hours": mean_sd("surgery_duration_hours"), "los_days": mean_sd("los_days"),
        "total_charge_cny": mean_sd("total_charge_cny"),
        "baseline_ome_users": mean_sd_users(recs),
    }


def mean_sd_users(recs):
    x = sorted(float(p["baseline_ome_mg_per_day"]) for p in recs if p.get("baseline_ome_mg_per_day"))
    if not x:
        return {"n": 0}
    q = np.percentile(x, [25, 50, 75], method="weibull")
    return {"n": len(x), "q1": float(q[0]), "median": float(q[1]), "q3": float(q[2])}


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (dt.date, pd.Timestamp)):
        return x.isoformat()
    if isinstance(x, Decimal):
        return str(x)
    return str(x)


DEFECT_COLUMNS = ["delivery_id", "source_file", "line_number", "record_key", "rule_id", "expected_disposition",
                  "description"]


def write_truth(truth: Path, bundle: Bundle, defects: list[dict], plan: Plan, summary: dict,
                used: set[str], styles: dict[str, FileStyle], seed: int, profile: str) -> None:
    truth.mkdir(parents=True, exist_ok=True)
    (truth / "latent.csv").write_text(latent_csv(bundle.latent), encoding="utf-8")
    try:   # Stage A's own recomputation of every published target, when it offers one
        from .latent import achieved_stats as latent_stats
        stats = json.loads(json.dumps(latent_stats(bundle.latent), default=_jsonable))
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        stats = achieved_stats(bundle.records)
    rows: dict[str, int] = {}
    for did in plan.ids:
        for fname, info in summary[did]["files"].items():
            rows[stem_of(fname)] = rows.get(stem_of(fname), 0) + info["rows"]
    stats["rendered"] = {"seed": seed, "profile": profile, "deliveries": plan.ids, "rows": rows,
                         "summary_of_latent": achieved_stats(bundle.records)}
    (truth / "achieved_stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2, sort_keys=True,
                                                          default=_jsonable) + "\n", encoding="utf-8")
    buf = io.StringIO()
    w = csv.DictWriter(buf, DEFECT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for d in defects:
        w.writerow({c: d.get(c, "") for c in DEFECT_COLUMNS})
    (truth / "defects.csv").write_text(buf.getvalue(), encoding="utf-8")
    buf = io.StringIO()
    cols = ["patient_id", "category", "expected_step", "implant_date", "description"]
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for rec in bundle.noncohort:
        w.writerow({c: rec.get(c, "") for c in cols})
    (truth / "noncohort.csv").write_text(buf.getvalue(), encoding="utf-8")
    steps: dict[str, int] = {}
    for rec in bundle.noncohort:
        steps[rec["expected_step"]] = steps.get(rec["expected_step"], 0) + 1
    files = {s: {"filename": st.filename, "encoding": st.encoding, "chinese_header": st.chinese_header,
                 "gz": st.gz, "column_order": st.header(), "extra_column": st.extra_column,
                 "updated_at": st.updated_at, "newline": "CRLF" if st.newline == "\r\n" else "LF"}
             for s, st in styles.items()}
    info = {"deliveries": plan.ids, "resent_file": plan.resent, "corrections": plan.corrections,
            "overlap_rows": plan.overlaps, "files": files, "variants_used": sorted(used),
            "expected_attrition": {"included": len(bundle.records), **dict(sorted(steps.items()))}}
    (truth / "deliveries.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------

def generate(out: Path, seed: int = 11, profile: str = "paper", patients: int | None = None, deliveries: int = 1,
             dirty: bool = False, progress: Callable[[str], None] | None = None,
             latent: pd.DataFrame | None = None, quirks: bool = False) -> dict:
    """Write synthetic extract deliveries under ``out/landing`` and the truth under ``out/truth``.

    profile ``paper``: the 96-patient latent cohort plus a few hundred non-cohort patients
    (``patients`` sets the total); ``hospital``: a hospital-wide extract of ``patients``
    patients (default 200,000) streamed in chunks, with the paper extract embedded.
    ``quirks`` (paper profile, not with ``dirty``): ordinary clinical recording errors on
    cohort patients, one in-cohort violation per reachable blocking check, logged in
    ``truth/quirks.csv`` (see :mod:`synth.quirks`).
    Returns a summary (paths, deliveries, row counts per file).
    """
    out = Path(out)
    say = progress or (lambda msg: None)
    if quirks and (profile != "paper" or dirty):
        raise ValueError("quirks apply to the paper profile without dirty defects (use one of --quirks, --dirty)")
    if profile == "hospital":
        if deliveries != 1:
            raise ValueError("the hospital profile writes one delivery (use deliveries=1)")
        from .hospital import generate_hospital
        return generate_hospital(out, seed=seed, patients=patients, dirty=dirty, progress=say, latent=latent)
    if profile != "paper":
        raise ValueError(f"unknown profile {profile!r} (paper or hospital)")
    if deliveries < 1:
        raise ValueError("deliveries must be at least 1")
    say("rendering the cohort and the non-cohort patients")
    bundle = build_bundle(seed, latent, patients, dirty)
    styles = choose_styles(seed)
    quirk_log = None
    if quirks:
        from .quirks import inject_quirks
        say("placing clinical quirks on cohort patients")
        quirk_log = inject_quirks(bundle, sub_rng(seed, "quirks"))
    say(f"splitting into {deliveries} deliveries")
    plan = make_plan(bundle.rows, deliveries, seed, bundle.cohort_ids)
    if quirk_log is not None:
        from .quirks import apply_overrides
        apply_overrides(plan, quirk_log)
    defects: list[dict] = []
    if dirty:
        from .dirty import inject
        say("injecting defects")
        inject(plan, bundle, styles, sub_rng(seed, "dirty"))
    for k in range(len(plan.ids)):
        for s in FILE_ORDER:
            plan.recs[k][s].sort(key=sort_key(s))
    landing = out / LANDING_DIR
    say("writing files")
    summary, used = write_plan(plan, styles, landing, seed)
    used |= bundle.used
    if dirty:
        from .dirty import collect
        defects = collect(plan, styles)
    write_truth(out / TRUTH_DIR, bundle, defects, plan, summary, used, styles, seed, "paper")
    if quirk_log is not None:
        from .quirks import write_quirks
        write_quirks(out / TRUTH_DIR, quirk_log)
    rows_total: dict[str, int] = {}
    for did in plan.ids:
        for fname, info in summary[did]["files"].items():
            stem = stem_of(fname)
            rows_total[stem] = rows_total.get(stem, 0) + info["rows"]
    say("done")
    return {"out": str(out), "landing": str(landing), "truth": str(out / TRUTH_DIR), "profile": "paper",
            "seed": seed, "deliveries": plan.ids, "files": summary, "rows": rows_total,
            "patients": {"cohort": len(bundle.records), "noncohort": len(bundle.noncohort)},
            "defects": len(defects), "quirks": len(quirk_log.quirks) if quirk_log is not None else 0}


def stem_of(filename: str) -> str:
    base = filename.split(".")[0]
    for s, (alias, _, _) in SCHEMA.items():
        if base in (s, alias):
            return s
    return base
