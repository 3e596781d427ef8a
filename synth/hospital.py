"""Hospital profile: a hospital-wide extract written streaming, with the paper extract embedded.

The paper part (the 96 included patients and the paper's non-cohort patients, with
every surface variant, and the dirty defects when asked) is written first; then
``patients`` background patients of every department are generated in chunks with
numpy and appended to the open files (gzip streams where the file style says
``.csv.gz``). Only one chunk is ever held in memory, so memory stays bounded however
many orders are written (about 50 medication orders per patient: 200,000 patients
give about 10 million orders).

Background rows use the plain contract forms (ISO ``T`` date-times with seconds,
plain numbers, English codes) so that they format fast; the paper part carries the
variants. Background patients have no pump: they leave the cohort at ``no_implant``.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .deliveries import (
    LANDING_DIR,
    TRUTH_DIR,
    Formatter,
    build_bundle,
    choose_styles,
    make_plan,
    render_records,
    sort_key,
    sub_rng,
    write_truth,
)
from .variants import FILE_ORDER, FileStyle, csv_line, sha256_file

DEFAULT_PATIENTS = 200_000
CHUNK = 4_000
EPOCH = np.datetime64("2019-06-01T00:00", "m")
SPAN_MIN = int((np.datetime64("2024-02-25T00:00", "m") - EPOCH).astype(np.int64))

DEPTS = np.array(["肿瘤内科", "胸外科", "普外科", "消化内科", "呼吸内科", "放疗科", "妇科", "泌尿外科", "骨科", "心内科",
                  "神经内科", "内分泌科", "肾内科", "血液科", "老年科", "疼痛科"])
DRUGS = [  # name, dose, unit, route, freq, kind, weight
    ("注射用头孢呋辛钠", "1.5", "g", "IV", "bid", "long_term", 8), ("奥美拉唑肠溶胶囊", "20", "mg", "PO", "qd", "long_term", 10),
    ("氯化钠注射液", "250", "mg", "IV", "qd", "long_term", 14), ("葡萄糖注射液", "5", "g", "IV", "qd", "long_term", 8),
    ("氯化钾缓释片", "1", "g", "PO", "tid", "long_term", 5), ("阿托伐他汀钙片", "20", "mg", "PO", "qn", "long_term", 5),
    ("苯磺酸氨氯地平片", "5", "mg", "PO", "qd", "long_term", 5), ("盐酸二甲双胍片", "0.5", "g", "PO", "tid", "long_term", 4),
    ("地塞米松磷酸钠注射液", "5", "mg", "IV", "st", "temporary", 4), ("盐酸昂丹司琼注射液", "8", "mg", "IV", "st", "temporary", 4),
    ("甲氧氯普胺注射液", "10", "mg", "IM", "st", "temporary", 3), ("呋塞米注射液", "20", "mg", "IV", "st", "temporary", 3),
    ("依诺肝素钠注射液", "40", "mg", "SC", "qd", "long_term", 3), ("硫酸吗啡缓释片", "30", "mg", "PO", "q12h", "long_term", 2),
    ("盐酸羟考酮缓释片", "20", "mg", "PO", "q12h", "long_term", 2), ("盐酸吗啡注射液", "10", "mg", "SC", "st", "temporary", 2),
    ("芬太尼透皮贴剂", "25", "μg/h", "TD", "q72h", "long_term", 1), ("盐酸曲马多缓释片", "100", "mg", "PO", "bid", "long_term", 2),
    ("塞来昔布胶囊", "200", "mg", "PO", "bid", "long_term", 3), ("普瑞巴林胶囊", "75", "mg", "PO", "bid", "long_term", 2),
    ("艾司唑仑片", "1", "mg", "PO", "qn", "long_term", 3), ("聚乙二醇4000散", "10", "g", "PO", "qd", "long_term", 3),
    ("注射用泮托拉唑钠", "40", "mg", "IV", "qd", "long_term", 5), ("复方氨基酸注射液", "250", "mg", "IV", "qd", "long_term", 4),
]
DX = [("C34.900x001", "肺恶性肿瘤"), ("C18.900", "结肠恶性肿瘤"), ("C16.900", "胃恶性肿瘤"), ("C22.000", "肝细胞癌"),
      ("C50.900x001", "乳腺恶性肿瘤"), ("C25.900", "胰腺恶性肿瘤"), ("I10.x00", "高血压"), ("E11.900", "2型糖尿病"),
      ("J18.900", "肺炎"), ("I25.103", "冠状动脉粥样硬化性心脏病"), ("K80.200", "胆囊结石"), ("N18.500", "慢性肾脏病5期"),
      ("M54.5", "腰痛"), ("G89.3", "癌性疼痛"), ("C79.500x001", "骨继发恶性肿瘤"), ("D64.900", "贫血")]


def _pick_arrays(rows, idx):
    return [np.array([r[j] for r in rows], dtype=object)[idx] for j in range(len(rows[0]))]


def _dt_str(minutes: np.ndarray) -> list[str]:
    return np.datetime_as_string(EPOCH + minutes.astype("timedelta64[m]"), unit="s").tolist()


def _date_str(minutes: np.ndarray) -> list[str]:
    return np.datetime_as_string(EPOCH + minutes.astype("timedelta64[m]"), unit="D").tolist()


class Sink:
    """One open output file: plain or gzip, with the style's encoding."""

    def __init__(self, path: Path, style: FileStyle):
        self.path = path
        self.style = style
        self.raw = open(path, "wb")
        self.f = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=1) if style.gz \
            else self.raw
        self.rows = 0
        self.enc = "utf-8" if style.encoding == "utf-8-sig" else style.encoding
        if style.encoding == "utf-8-sig":
            self.f.write(b"\xef\xbb\xbf")
        self.write_text(csv_line(style.header(), style.newline))

    def write_text(self, text: str) -> None:
        self.f.write(text.encode(self.enc))

    def write_rows(self, cols: dict[str, list[str]], n: int) -> None:
        if n == 0:
            return
        order = []
        for c in self.style.column_order:
            if c == "__extra__":
                order.append(["HIS"] * n)
            elif c == "updated_at":
                order.append([""] * n)
            else:
                order.append(cols[c])
        nl = self.style.newline
        self.write_text(nl.join(",".join(t) for t in zip(*order, strict=True)) + nl)
        self.rows += n

    def close(self) -> None:
        if self.f is not self.raw:
            self.f.close()
        self.raw.close()


def bulk_chunk(r: np.random.Generator, first: int, n: int) -> dict[str, tuple[dict[str, list[str]], int]]:
    """Rows of ``n`` background patients numbered from ``first`` (column -> strings)."""
    out = {}
    pids = [f"3{i:09d}" for i in range(first, first + n)]
    sex = r.choice(np.array(["M", "F"]), n).tolist()
    birth = _date_str(r.integers(-90 * 525_600, -18 * 525_600, n))
    ins = r.choice(np.array(["employee", "resident", "self_pay", "commercial", "other"]), n,
                   p=[0.45, 0.4, 0.08, 0.04, 0.03]).tolist()
    out["patients"] = ({"patient_id": pids, "name": ["患者" + p[-5:] for p in pids],
                        "id_number": [f"110105{p[-9:]}00X" for p in pids],
                        "phone": [f"139{p[-8:]}" for p in pids], "sex": sex, "birth_date": birth,
                        "insurance_type": ins}, n)
    # admissions
    n_adm = 1 + r.poisson(0.6, n)
    a_pat = np.repeat(np.arange(n), n_adm)
    na = a_pat.size
    admit = r.integers(0, SPAN_MIN, na)
    admit -= admit % 10
    los = r.integers(1, 21, na)
    dis = admit + los * 1440 + r.integers(-300, 300, na)
    a_ids = [f"H{first + int(p):09d}{k:02d}" for k, p in enumerate(a_pat)]
    apid = [pids[int(p)] for p in a_pat]
    charge = r.integers(300_000, 8_000_000, na)
    out["admissions"] = ({"admission_id": a_ids, "patient_id": apid, "admit_time": _dt_str(admit),
                          "discharge_time": _dt_str(dis), "department": r.choice(DEPTS, na).tolist(),
                          "arrival_mode": r.choice(np.array(["walk", "wheelchair", "cart"]), na, p=[0.8, 0.15, 0.05]).tolist(),
                          "discharge_status": r.choice(np.array(["alive", "dead", "transfer"]), na,
                                                       p=[0.96, 0.02, 0.02]).tolist(),
                          "total_charge": [f"{c / 100:.2f}" for c in charge],
                          "self_pay": [f"{c * 0.3 / 100:.2f}" for c in charge]}, na)
    # diagnoses: 3 per admission on average
    n_dx = 1 + r.poisson(2.0, na)
    d_adm = np.repeat(np.arange(na), n_dx)
    nd = d_adm.size
    codes = _pick_arrays(DX, r.integers(0, len(DX), nd))
    out["diagnoses"] = ({"diagnosis_id": [f"HD{first:07d}{i:07d}" for i in range(nd)],
                         "patient_id": [apid[a] for a in d_adm], "admission_id": [a_ids[a] for a in d_adm],
                         "diagnosis_date": _date_str(admit[d_adm]), "icd10_code": codes[0].tolist(),
                         "diagnosis_name": codes[1].tolist()}, nd)
    # measurements: height, weight, nrs and a few more per admission
    n_m = 3 + r.poisson(3.0, na)
    m_adm = np.repeat(np.arange(na), n_m)
    nm = m_adm.size
    k = np.arange(nm) - np.repeat(np.cumsum(n_m) - n_m, n_m)
    item = np.where(k == 0, "height", np.where(k == 1, "weight", np.where(k % 2 == 0, "nrs", "adl")))
    val = np.where(k == 0, r.integers(148, 188, nm), np.where(k == 1, r.integers(38, 95, nm),
                   np.where(item == "nrs", r.integers(0, 10, nm), r.integers(0, 21, nm) * 5)))
    unit = np.where(k == 0, "cm", np.where(k == 1, "kg", "分"))
    t_m = admit[m_adm] + 30 + k * 180
    out["measurements"] = ({"measurement_id": [f"HM{first:07d}{i:08d}" for i in range(nm)],
                            "patient_id": [apid[a] for a in m_adm], "admission_id": [a_ids[a] for a in m_adm],
                            "measured_at": _dt_str(t_m), "item": item.tolist(), "value": val.astype(str).tolist(),
                            "unit": unit.tolist()}, nm)
    # medication orders: about 31 per admission
    n_o = r.poisson(31.25, na)
    o_adm = np.repeat(np.arange(na), n_o)
    no = o_adm.size
    w = np.array([d[6] for d in DRUGS], dtype=float)
    drug = r.choice(len(DRUGS), no, p=w / w.sum())
    cols = _pick_arrays(DRUGS, drug)
    start = admit[o_adm] + (r.random(no) * (dis[o_adm] - admit[o_adm] - 60)).astype(np.int64)
    start -= start % 10
    end = np.where(cols[5] == "long_term", dis[o_adm], -1)
    end_s = _dt_str(np.maximum(end, 0))
    end_s = [e if x >= 0 else "" for e, x in zip(end_s, end, strict=True)]
    out["medication_orders"] = ({"order_id": [f"HO{first:07d}{i:08d}" for i in range(no)],
                                 "patient_id": [apid[a] for a in o_adm], "admission_id": [a_ids[a] for a in o_adm],
                                 "drug_name": cols[0].tolist(), "dose": cols[1].tolist(), "dose_unit": cols[2].tolist(),
                                 "route": cols[3].tolist(), "frequency": cols[4].tolist(),
                                 "order_kind": cols[5].tolist(), "start_time": _dt_str(start), "end_time": end_s}, no)
    # a few procedures (radiofrequency, other)
    pr = np.flatnonzero(r.random(na) < 0.05)
    out["procedures"] = ({"procedure_id": [f"HP{first:07d}{i:06d}" for i in range(pr.size)],
                          "patient_id": [apid[a] for a in pr], "admission_id": [a_ids[a] for a in pr],
                          "procedure_code": ["03.9600"] * pr.size, "procedure_name": ["射频热凝术"] * pr.size,
                          "start_time": _dt_str(admit[pr] + 1440), "end_time": _dt_str(admit[pr] + 1500)}, pr.size)
    return out


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def generate_hospital(out: Path, seed: int = 11, patients: int | None = None, dirty: bool = False,
                      progress: Callable[[str], None] | None = None, latent: pd.DataFrame | None = None,
                      chunk: int = CHUNK) -> dict:
    say = progress or (lambda msg: None)
    n_total = DEFAULT_PATIENTS if patients is None else int(patients)
    t0 = time.perf_counter()
    say("rendering the paper extract (cohort and non-cohort patients)")
    bundle = build_bundle(seed, latent, None, dirty)
    styles = choose_styles(seed)
    plan = make_plan(bundle.rows, 1, seed, bundle.cohort_ids)
    if dirty:
        from .dirty import inject
        inject(plan, bundle, styles, sub_rng(seed, "dirty"))
    did = plan.ids[0]
    for s in FILE_ORDER:
        plan.recs[0][s].sort(key=sort_key(s))
    landing = out / LANDING_DIR
    ddir = landing / did
    ddir.mkdir(parents=True, exist_ok=True)
    sinks = {s: Sink(ddir / styles[s].filename, styles[s]) for s in FILE_ORDER}
    used: set[str] = set(bundle.used)
    for s in FILE_ORDER:
        fmt = Formatter(styles[s], sub_rng(seed, "format", did, s))
        parts, n, _ = render_records(fmt, plan.recs[0][s], 2)
        sinks[s].write_text("".join(parts))
        sinks[s].rows += n
        used |= fmt.used
    n_paper = len(bundle.records) + len(bundle.noncohort)
    n_bulk = max(0, n_total - n_paper)
    r = sub_rng(seed, "hospital")
    truth = out / TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    bulk_truth = open(truth / "noncohort_bulk.csv", "w", encoding="utf-8", newline="")
    bulk_truth.write("patient_id,category,expected_step,implant_date,description\n")
    done = 0
    n_chunks = (n_bulk + chunk - 1) // chunk
    for c in range(n_chunks):
        m = min(chunk, n_bulk - done)
        rows = bulk_chunk(r, done, m)
        for s, (cols, n) in rows.items():
            sinks[s].write_rows(cols, n)
        bulk_truth.write("".join(f"{p},background,no_implant,,background patient of another department\n"
                                 for p in rows["patients"][0]["patient_id"]))
        done += m
        del rows
        say(f"chunk {c + 1}/{n_chunks}: {done + n_paper} patients, "
            f"{sinks['medication_orders'].rows} medication orders ({100 * done // max(1, n_bulk)}%)")
    bulk_truth.close()
    files = {}
    for s in FILE_ORDER:
        sinks[s].close()
        files[styles[s].filename] = {"rows": sinks[s].rows, "sha256": sha256_file(sinks[s].path)}
    (ddir / "manifest.json").write_text(json.dumps({"delivery_id": did, "exported_at": f"{did}T06:00:00",
                                                    "files": files}, ensure_ascii=False, indent=2) + "\n",
                                        encoding="utf-8")
    defects = []
    if dirty:
        from .dirty import collect
        defects = collect(plan, styles)
    summary = {did: {"files": files}}
    write_truth(truth, bundle, defects, plan, summary, used, styles, seed, "hospital")
    elapsed = time.perf_counter() - t0
    rows_total = {s: sinks[s].rows for s in FILE_ORDER}
    say(f"done in {elapsed:.1f} s")
    return {"out": str(out), "landing": str(landing), "truth": str(truth), "profile": "hospital", "seed": seed,
            "deliveries": [did], "files": summary, "rows": rows_total,
            "patients": {"cohort": len(bundle.records), "noncohort": len(bundle.noncohort), "background": n_bulk},
            "defects": len(defects), "seconds": round(elapsed, 2), "peak_rss_mb": round(rss_mb(), 1)}
