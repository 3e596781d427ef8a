"""The study report: our results side by side with the paper's, one HTML file plus PNG figures.

``build_study_report(con, run_id, reports_dir)`` reads the outcome marts from the
warehouse (it recomputes no statistic; the figures are drawn from
``marts.cohort_idds`` by :func:`idds.outcomes.save_figures`) and writes

    <reports_dir>/<run_id>/study.html
    <reports_dir>/<run_id>/figures/*.png

then copies both to ``<reports_dir>/latest/``. The HTML is self-contained (inline
CSS, no external URL; figures are relative links) and holds aggregates only: no
patient-level row and no patient key. A missing or empty mart is named in the
report with the reason recorded in ``marts.outcome_status``; the report is still
written.
"""

from __future__ import annotations

import math
import re
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pandas as pd

from analysis.formatting import fmt_number
from analysis.lost_values import lost_note
from analysis.paper import INCONSISTENCIES, PAPER
from idds import __version__
from idds.outcomes import FIGURES, OUTCOME_MARTS, STATUS_MART, read_cohort, save_figures

__all__ = ["build_study_report"]

CITATION = ("Wang W, Shi Q, Cao Y, Fan B, Yang Y. Intrathecal drug delivery systems for cancer "
            "pain: a retrospective analysis at a single tertiary medical center in China. "
            "Heliyon 2024;10:e34522. doi:10.1016/j.heliyon.2024.e34522")

_IC_RE = re.compile(r"IC-\d\d")

_STAT_LABELS = {"n_pct": "n (%)", "mean_sd": "mean ± SD", "median_iqr": "median (IQR)"}

_VARIABLE_LABELS = {
    "age_years": "Age (years)", "sex": "Sex", "bmi": "BMI (kg/m²)", "underweight": "Underweight",
    "adl_barthel": "ADL (Barthel) at surgery", "adl_lt60": "ADL below 60",
    "arrival_wheelchair_or_cart": "Admitted by wheelchair or cart", "pressure_sore": "Pressure sores",
    "skin_compromising_line": "Skin-compromising indwelling line", "implant_year": "Year of implant",
    "cancer_site": "Cancer type", "cancer_duration_months": "Cancer duration (months)",
    "metastasis_any": "Distant metastasis", "met_bone": "Metastasis", "met_liver": "Metastasis",
    "met_lung": "Metastasis", "prior_surgery": "Prior surgery",
    "prior_chemoradiotherapy": "Prior chemo- or radiotherapy",
    "prior_immunotherapy": "Prior immunotherapy", "prior_any_antineoplastic": "Any prior anticancer treatment",
    "pain_duration_months": "Pain duration (months)", "pain_preceded_cancer": "Pain preceded the cancer diagnosis",
    "systemic_opioid_user": "Systemic opioid at baseline",
    "baseline_ome_mg_per_day": "Baseline OME (mg/d)", "ome_gt200": "Baseline OME", "ome_gt500": "Baseline OME",
    "n_adjuvant_drugs": "Adjuvant analgesics", "prior_pain_intervention": "Prior interventional pain procedure",
    "implant_reason": "Reason for IDDS", "itt_count": "Intrathecal trials", "itt_any": "Any intrathecal trial",
    "itt_drug": "Trial drug", "itt_dose_mg": "Trial dose (mg)", "surgery_duration_hours": "Surgery duration (h)",
    "insertion_level_group": "Insertion level", "catheter_cephalad": "Catheter advanced cephalad",
    "tip_group": "Catheter tip", "catheter_tip_level": "Catheter tip level", "idds_drug": "Drug for IDDS",
    "initial_daily_dose_mg": "Initial IDDS dose (mg/d)", "los_days": "Length of stay (days)",
    "postop_los_days": "Implant to discharge (days)", "total_charge_cny": "Total cost (CNY)",
    "self_pay_cny": "Self-paid cost (CNY)", "followup_status": "Follow-up status",
    "comp_pdph": "Post-dural puncture headache", "comp_fever": "Post-operative fever",
    "comp_urinary_retention_constipation": "Urinary retention or constipation (5 days)",
    "in_hospital_death": "Died in hospital (post-op day 1)", "comp_poor_wound_healing": "Poor wound healing (explanted)",
    "baseline_nrs": "NRS", "followup_nrs": "NRS", "satisfied": "Satisfied with IDDS",
    "systemic_opioid_after": "Systemic opioid after IDDS", "os_event": "Vital status",
    "os_months": "Months from implant to death/last visit",
}

_STRATUM_LABELS = {
    "cancer_group": "Cancer group (lung / GI / other)", "adl_lt60": "ADL < 60",
    "metastasis_any": "Distant metastasis", "met_bone": "Bone metastasis",
    "ome_gt200": "Baseline OME > 200 mg/d", "implant_year": "Year of implant",
    "itt_any": "Intrathecal trial", "underweight": "BMI < 18.5",
}

_MART_TITLES = {
    "table1": "Table 1 (baseline characteristics)", "table2": "Table 2 (IDDS, stay and cost)",
    "table3": "Table 3 (outcomes)", "pain_response": "Pain before and after IDDS",
    "survival_km": "Kaplan-Meier curves", "survival_summary": "Survival summary",
    "survival_logrank": "Log-rank tests", "cox_model": "Cox model", "cox_ph_test": "Cox PH test",
    "implants_by_year": "Implants by year", "reproduction": "Reproduction",
}

KM_POINTS_MONTHS: tuple[float, ...] = (1, 3, 6, 12, 24)


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return isinstance(v, float) and math.isnan(v)
    except TypeError:
        return False


def _num(v: Any, dp: int = 2, thousands: bool = False) -> str:
    """Half-up display of a number; '–' when missing, 'NR' when infinite (not reached)."""
    if _missing(v):
        return "–"
    v = float(v)
    if math.isinf(v):
        return "NR"
    return fmt_number(v, dp, thousands=thousands)


def _int(v: Any) -> str:
    return "–" if _missing(v) else f"{int(v):,}"


def _text(v: Any) -> str:
    return "" if _missing(v) else str(v)


def _p_exact(p: Any) -> str:
    if _missing(p):
        return "–"
    p = float(p)
    if p == 0:
        return "< 1e-300"
    return f"{p:.2e}" if p < 0.001 else f"{p:.3f}"


def _q(v: Any, dp: int = 2) -> str:
    """A survival quantile: NULL in the marts means 'not reached' (NR)."""
    return "NR" if _missing(v) else _num(v, dp)


def _surv_ci(s: Any, lo: Any, hi: Any) -> str:
    if _missing(s):
        return "–"
    return f"{_num(100 * float(s), 1)} % ({_num(100 * float(lo), 1) if not _missing(lo) else '–'}–" \
           f"{_num(100 * float(hi), 1) if not _missing(hi) else '–'})"


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with pandas missing values turned into None."""
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (None if _missing(v) else v) for k, v in rec.items()})
    return out


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()", [schema, name]).fetchall()[0][0])


def _read_mart(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame | None:
    if not _table_exists(con, "marts", name):
        return None
    return con.execute(f'select * from marts."{name}"').df()


def _mark(matches: Any, ic_ids: str) -> dict:
    """The match mark of one compared value."""
    if _missing(matches):
        return {"cls": "na", "text": "–", "title": "not printed in the paper"}
    if bool(matches):
        return {"cls": "ok", "text": "✓", "title": "reproduced"}
    if ic_ids:
        return {"cls": "flag", "text": "≠ " + ic_ids.replace(",", " "),
                "title": "differs; the paper is inconsistent here (see the flag)"}
    return {"cls": "bad", "text": "✗", "title": "not reproduced"}


def _ics(*texts: Any) -> list[str]:
    found: list[str] = []
    for t in texts:
        if not _missing(t):
            for ic in _IC_RE.findall(str(t)):
                if ic not in found:
                    found.append(ic)
    return found


# ------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------


def _row_label(r: dict) -> str:
    key = r.get("paper_key")
    if key and key in PAPER:
        return PAPER[key].label
    return _VARIABLE_LABELS.get(r.get("variable") or "", (r.get("variable") or "").replace("_", " ").capitalize())


def _strip_ic_lead(note: str) -> str:
    """Drop a leading 'IC-xx[/IC-yy] ' from a note (the flag is shown as a badge beside it)."""
    return re.sub(r"^(?:IC-\d\d[/,]?)+\s*;?\s*", "", note)


class Footnotes:
    """Numbered footnotes for the statistics that lost values to set-asides: one number per
    distinct text, in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, row: dict) -> int | None:
        n = row.get("n_set_aside")
        if _missing(n) or not n:
            return None
        checks = _text(row.get("set_aside_checks")) or "rules on the variables that define its population"
        text = f"n excludes {lost_note(int(n), checks)}; see the Set aside section of the validation report."
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


def _table_section(frame: pd.DataFrame | None, notes: Footnotes) -> dict:
    if frame is None or frame.empty:
        return {"available": False, "sections": [], "n_compared": 0, "n_match": 0}
    sections: list[dict] = []
    n_compared = n_match = 0
    for r in _records(frame.sort_values("row_order")):
        ic_ids = ",".join(_ics(r.get("ic_ids")))
        mark = _mark(r.get("matches_paper"), ic_ids)
        if mark["cls"] != "na":
            n_compared += 1
            n_match += mark["cls"] == "ok"
        level = _text(r.get("level"))
        row = {
            "label": _VARIABLE_LABELS.get(r.get("variable") or "", _row_label(r)),
            "paper_label": PAPER[r["paper_key"]].label if r.get("paper_key") in PAPER else "",
            "level": level,
            "statistic": _STAT_LABELS.get(r.get("statistic") or "", _text(r.get("statistic"))),
            "n": f"{_int(r.get('n'))} / {_int(r.get('denominator'))}"
                 if r.get("statistic") == "n_pct" else _int(r.get("n")),
            "ours": _text(r.get("display")),
            "paper": _text(r.get("paper_display")) or "—",
            "mark": mark,
            "ic_ids": ic_ids.split(",") if ic_ids else [],
            "note": _strip_ic_lead(_text(r.get("note"))),
            "fn": notes.mark(r),
        }
        if not sections or sections[-1]["name"] != r.get("section"):
            sections.append({"name": _text(r.get("section")), "rows": []})
        sections[-1]["rows"].append(row)
    return {"available": True, "sections": sections, "n_compared": n_compared, "n_match": n_match}


def _pain_section(frame: pd.DataFrame | None, paper_p: str, notes: Footnotes) -> dict:
    if frame is None or frame.empty:
        return {"available": False}
    rows = []
    resp = None
    for r in _records(frame):
        is_t = r["test"] == "paired_t"
        rows.append({
            "test": "Paired t-test (primary, as the paper)" if is_t else "Wilcoxon signed-rank (sensitivity)",
            "n": _int(r.get("n")),
            "before": f"{_num(r.get('before_mean'), 2)} ± {_num(r.get('before_sd'), 2)}",
            "after": f"{_num(r.get('after_mean'), 2)} ± {_num(r.get('after_sd'), 2)}",
            "difference": (f"{_num(r.get('mean_difference'), 2)} ({_num(r.get('ci_low'), 2)}–"
                           f"{_num(r.get('ci_high'), 2)})" if is_t else _num(r.get("mean_difference"), 2)),
            "statistic": (f"t = {_num(r.get('statistic'), 2)}, df = {_num(r.get('df'), 0)}" if is_t
                          else f"W = {_num(r.get('statistic'), 1)}, z = {_num(r.get('z'), 2)}"),
            "p": _text(r.get("p_display")) or "–",
            "p_exact": _p_exact(r.get("p_value")),
            "effect": f"{_text(r.get('effect_size_name'))} = {_num(r.get('effect_size'), 2)}",
            "paper_p": paper_p if is_t else "not reported",
            "fn": notes.mark(r),
        })
        if resp is None and not _missing(r.get("n_improved")):
            n = r.get("n")
            resp = {
                "improved": f"{_int(r.get('n_improved'))} / {_int(n)} ({_num(r.get('pct_improved'), 1)} %)",
                "ge30": f"{_int(r.get('n_reduction_ge30'))} / {_int(n)} ({_num(r.get('pct_reduction_ge30'), 1)} %)",
                "ge50": f"{_int(r.get('n_reduction_ge50'))} / {_int(n)} ({_num(r.get('pct_reduction_ge50'), 1)} %)",
            }
    return {"available": True, "rows": rows, "responders": resp}


def _km_points(km: pd.DataFrame | None, analysis_set: str) -> list[dict]:
    """S(t) with its band and the number at risk at fixed months, read off the step table."""
    if km is None or km.empty:
        return []
    curve = km.loc[(km["analysis_set"] == analysis_set) & (km["stratum"] == "overall")]
    curve = curve.sort_values("time_months")
    if curve.empty:
        return []
    out = []
    last = float(curve["time_months"].max())
    for t in KM_POINTS_MONTHS:
        upto = curve.loc[curve["time_months"] <= t + 1e-9]
        after = curve.loc[curve["time_months"] >= t - 1e-9]
        at_risk = int(after["n_at_risk"].iloc[0]) if not after.empty else 0
        if t > last or upto.empty:
            out.append({"month": f"{t:g}", "survival": "–", "at_risk": str(at_risk)})
            continue
        r = upto.iloc[-1]
        out.append({"month": f"{t:g}", "survival": _surv_ci(r["survival"], r["ci_low"], r["ci_high"]),
                    "at_risk": str(at_risk)})
    return out


def _survival_section(summary: pd.DataFrame | None, km: pd.DataFrame | None,
                      logrank: pd.DataFrame | None, paper_os: str, notes: Footnotes) -> dict:
    if summary is None or summary.empty:
        return {"available": False, "overall": [], "strata": [], "points": {}}
    overall = []
    for r in _records(summary.loc[summary["stratum"] == "overall"]):
        fu = r["analysis_set"] == "followup"
        overall.append({
            "set": "Follow-up set (the paper's)" if fu else "All included patients (sensitivity, IC-11)",
            "analysis_set": r["analysis_set"],
            "n": _int(r.get("n")), "events": _int(r.get("n_events")), "censored": _int(r.get("n_censored")),
            "fn": notes.mark(r),
            "display": _text(r.get("display")),
            "median": _q(r.get("median_months")),
            "median_ci": f"{_q(r.get('median_ci_low'))}–{_q(r.get('median_ci_high'))}",
            "t75": _q(r.get("t_s075_months")), "t25": _q(r.get("t_s025_months")),
            "s6": _surv_ci(r.get("surv_6m"), r.get("surv_6m_ci_low"), r.get("surv_6m_ci_high")),
            "s12": _surv_ci(r.get("surv_12m"), r.get("surv_12m_ci_low"), r.get("surv_12m_ci_high")),
            "followup": _num(r.get("median_followup_months"), 1),
            "censored_range": f"{_num(r.get('censored_min_months'), 1)}–{_num(r.get('censored_max_months'), 1)}",
            "descriptive": f"{_num(r.get('desc_median_months'), 0)} ({_num(r.get('desc_q1_months'), 0)}–"
                           f"{_num(r.get('desc_q3_months'), 0)})",
            "descriptive_exact": f"{_num(r.get('desc_median_months'), 2)} ({_num(r.get('desc_q1_months'), 2)}–"
                                 f"{_num(r.get('desc_q3_months'), 2)})",
            "paper": paper_os if fu else "not reported",
        })
    lr_p: dict[tuple[str, str], str] = {}
    if logrank is not None and not logrank.empty:
        for r in _records(logrank):
            lr_p[(r["analysis_set"], r["variable"])] = _text(r.get("p_display")) or "–"
    strata: list[dict] = []
    sub = summary.loc[summary["stratum"] != "overall"]
    for (aset, var), grp in sub.groupby(["analysis_set", "variable"], sort=False):
        rows = [{
            "level": _text(r.get("level")), "n": _int(r.get("n")), "events": _int(r.get("n_events")),
            "median": f"{_q(r.get('median_months'), 1)} ({_q(r.get('median_ci_low'), 1)}–"
                      f"{_q(r.get('median_ci_high'), 1)})",
            "s6": _surv_ci(r.get("surv_6m"), r.get("surv_6m_ci_low"), r.get("surv_6m_ci_high")),
        } for r in _records(grp)]
        strata.append({"analysis_set": aset, "variable": var, "label": _STRATUM_LABELS.get(var, var),
                       "p": lr_p.get((aset, var), "–"), "rows": rows})
    strata.sort(key=lambda s: (s["analysis_set"] != "followup", s["variable"]))
    by_set = {o["analysis_set"]: o for o in overall}
    fields = (
        ("Patients", "n", "72"), ("Deaths", "events", "56"), ("Censored (alive at last contact)", "censored", "16"),
        ("Median (t[S=0.75]–t[S=0.25]), months, as the paper prints", "display", paper_os),
        ("Median, months", "median", ""), ("Median 95 % CI (log-log)", "median_ci", ""),
        ("t[S=0.75]: survival falls to 75 %, months", "t75", ""),
        ("t[S=0.25]: survival falls to 25 %, months", "t25", ""),
        ("6-month survival (95 % CI)", "s6", ""), ("12-month survival (95 % CI)", "s12", ""),
        ("Median follow-up, reverse Kaplan-Meier, months", "followup", ""),
        ("Censored follow-up, range, months", "censored_range", ""),
        ("Descriptive median (IQR) of observed times (Table 3, IC-10)", "descriptive", "3 (2–6)"),
        ("Same, 2 decimals", "descriptive_exact", ""),
    )
    grid = [{"label": label, "followup": by_set.get("followup", {}).get(key, "–"),
             "sensitivity": by_set.get("sensitivity", {}).get(key, "–"), "paper": paper or "not reported",
             "key": key,
             "fn_followup": by_set.get("followup", {}).get("fn") if key == "n" else None,
             "fn_sensitivity": by_set.get("sensitivity", {}).get("fn") if key == "n" else None}
            for label, key, paper in fields]
    return {"available": True, "overall": overall, "grid": grid, "strata": strata,
            "points": {s: _km_points(km, s) for s in ("followup", "sensitivity")}}


def _cox_section(model: pd.DataFrame | None, ph: pd.DataFrame | None, notes: Footnotes) -> dict:
    if model is None or model.empty:
        return {"available": False, "models": []}
    models = []
    for aset, grp in model.groupby("analysis_set", sort=False):
        recs = _records(grp)
        first = recs[0]
        ph_rows = []
        if ph is not None and not ph.empty:
            for r in _records(ph.loc[ph["analysis_set"] == aset]):
                ph_rows.append({"term": r["term"], "transform": r["transform"],
                                "statistic": _num(r.get("test_statistic"), 2),
                                "p": _text(r.get("p_display")), "violated": bool(r.get("violated"))})
        models.append({
            "analysis_set": aset,
            "set": "Follow-up set" if aset == "followup" else "All included patients (sensitivity)",
            "n": _int(first.get("n")), "events": _int(first.get("n_events")), "fn": notes.mark(first),
            "concordance": _num(first.get("concordance"), 2),
            "rows": [{"label": r["label"], "hr": _text(r.get("display")), "p": _text(r.get("p_display")),
                      "coef": _num(r.get("coef"), 3), "se": _num(r.get("se"), 3)} for r in recs],
            "ph": ph_rows,
            "violations": [r["label"] for r in recs
                           if any(p["violated"] and p["term"] == r["term"] for p in ph_rows)],
        })
    return {"available": True, "models": models}


def _implants_section(frame: pd.DataFrame | None) -> dict:
    if frame is None or frame.empty:
        return {"available": False, "rows": []}
    rows = []
    for r in _records(frame.sort_values("implant_year")):
        rows.append({"year": _int(r.get("implant_year")).replace(",", ""), "n": _int(r.get("n")),
                     "ours": _text(r.get("display")), "paper": _text(r.get("paper_display")) or "—",
                     "mark": _mark(r.get("matches_paper"), ""),
                     "change": "" if _missing(r.get("change_from_previous"))
                     else f"{int(r['change_from_previous']):+d}"})
    return {"available": True, "rows": rows}


def _reproduction_section(frame: pd.DataFrame | None) -> dict:
    """The reproduction mart; a statistic that lost values says so beside its note."""
    if frame is None or frame.empty:
        return {"available": False, "rows": []}
    rows = []
    for r in _records(frame):
        ic_ids = ",".join(_ics(r.get("ic_ids"), r.get("note")))
        ours = _text(r.get("pipeline_value"))
        mark = _mark(r.get("matches"), ic_ids) if ours else \
            {"cls": "nc", "text": "not computed", "title": "the pipeline could not compute it in this run"}
        rows.append({"source": _text(r.get("source")), "statistic": _text(r.get("statistic")),
                     "paper": _text(r.get("paper_value")), "ours": ours or "—",
                     "mark": mark, "note": _text(r.get("note")), "set_aside": _text(r.get("set_aside"))})
    total = len(rows)
    count = {c: sum(r["mark"]["cls"] == c for r in rows) for c in ("ok", "flag", "bad", "nc")}
    return {"available": True, "rows": rows, "total": total, "ok": count["ok"], "flagged": count["flag"],
            "bad": count["bad"], "not_computed": count["nc"]}


def _inconsistencies(marts: dict[str, pd.DataFrame | None]) -> tuple[list[dict], list[dict]]:
    """(flags that apply, with where they show; flags not assessed in this run).

    A flag applies when a mart of this run carries its id. Where it shows is taken
    from the reproduction mart (one line per printed statistic); the tables and the
    survival and pain marts are consulted for flags the reproduction does not carry.
    """
    found: dict[str, list[str]] = {}
    extra: dict[str, list[str]] = {}

    def add(target: dict[str, list[str]], ic: str, label: str) -> None:
        lst = target.setdefault(ic, [])
        if label not in lst:
            lst.append(label)

    rep = marts.get("reproduction")
    if rep is not None and not rep.empty:
        for r in _records(rep):
            if not _text(r.get("pipeline_value")):
                continue  # not computed in this run: its flag cannot be assessed
            for ic in _ics(r.get("ic_ids"), r.get("note")):
                add(found, ic, f"{_text(r.get('statistic'))} ({_text(r.get('source'))})")
    for name in ("table1", "table2", "table3"):
        t = marts.get(name)
        if t is None or t.empty:
            continue
        for r in _records(t):
            for ic in _ics(r.get("ic_ids"), r.get("note")):
                lv = _text(r.get("level"))
                add(extra, ic, f"{name.replace('table', 'Table ')}: {_row_label(r)}{' – ' + lv if lv else ''}")
    labels = {"survival_summary": "Survival summary ({} set)", "pain_response": "Pain response ({})",
              "implants_by_year": "Implants by year"}
    keys = {"survival_summary": "analysis_set", "pain_response": "test", "implants_by_year": ""}
    for name, label in labels.items():
        t = marts.get(name)
        if t is None or t.empty:
            continue
        for r in _records(t):
            for ic in _ics(*(v for v in r.values() if isinstance(v, str))):
                add(extra, ic, label.format(_text(r.get(keys[name]))) if keys[name] else label)
    applies, not_assessed = [], []
    for ic, text in INCONSISTENCIES.items():
        places = list(found.get(ic, []))
        places += [p for p in extra.get(ic, []) if not p.startswith("Table ") or ic not in found]
        if places:
            applies.append({"id": ic, "text": text, "where": places[:6], "more": max(0, len(places) - 6)})
        else:
            not_assessed.append({"id": ic, "text": text})
    return applies, not_assessed


# ------------------------------------------------------------------------------------------
# build
# ------------------------------------------------------------------------------------------


def _replace_dir(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def _set_aside_summary(con: duckdb.DuckDBPyConnection) -> dict | None:
    """How many values the analysis did not use (marts.cohort_set_aside), by variable."""
    frame = _read_mart(con, "cohort_set_aside")
    if frame is None or frame.empty:
        return None
    by_var = frame.groupby("variable")["patient_key"].nunique().sort_values(ascending=False)
    return {"values": len(frame), "patients": int(frame["patient_key"].nunique()),
            "checks": sorted(frame["check_id"].unique()),
            "by_variable": [(v, int(n)) for v, n in by_var.items()]}


def build_study_report(con: duckdb.DuckDBPyConnection, run_id: str, reports_dir: Path) -> Path:
    """Write ``<reports>/<run_id>/study.html`` with its figures and copy both to ``latest/``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The working warehouse (outcome marts written by
        :func:`idds.outcomes.write_outcome_marts`, and ``marts.cohort_idds``).
    run_id : str
    reports_dir : pathlib.Path

    Returns
    -------
    pathlib.Path
        The run's ``study.html``.
    """
    reports_dir = Path(reports_dir)
    out_dir = reports_dir / run_id
    fig_dir = out_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    marts = {name: _read_mart(con, name) for name in OUTCOME_MARTS}
    status = _read_mart(con, STATUS_MART)
    reasons = {}
    if status is not None:
        reasons = {r["mart"]: _text(r.get("reason")) for r in _records(status)}
    availability = []
    for name in OUTCOME_MARTS:
        frame = marts[name]
        if frame is None:
            state, why = "missing", reasons.get(name) or "the table does not exist in this warehouse"
        elif frame.empty:
            state, why = "empty", reasons.get(name) or "no rows"
        else:
            state, why = "ok", ""
        availability.append({"mart": name, "title": _MART_TITLES[name], "state": state, "reason": why,
                             "rows": 0 if frame is None else len(frame)})

    cohort = read_cohort(con)
    figure_paths = save_figures(cohort, fig_dir) if cohort is not None and not cohort.empty else []
    figures = {p.name: {"src": f"figures/{p.name}", "caption": FIGURES.get(p.name, p.stem)}
               for p in figure_paths}
    stratum_figures = [f for name, f in figures.items() if name.startswith("km_by_")]

    paper_os = PAPER["os_km"].display if "os_km" in PAPER else "3 (2–6)"
    paper_p = PAPER["nrs_p"].display if "nrs_p" in PAPER else "<0.001"
    notes = Footnotes()
    tables = {name: _table_section(marts[name], notes) for name in ("table1", "table2", "table3")}
    pain = _pain_section(marts["pain_response"], paper_p, notes)
    survival = _survival_section(marts["survival_summary"], marts["survival_km"],
                                 marts["survival_logrank"], paper_os, notes)
    cox = _cox_section(marts["cox_model"], marts["cox_ph_test"], notes)
    reproduction = _reproduction_section(marts["reproduction"])
    applies, not_assessed = _inconsistencies(marts)

    fu = next((o for o in survival["overall"] if o["analysis_set"] == "followup"), None)
    sens = next((o for o in survival["overall"] if o["analysis_set"] == "sensitivity"), None)
    overview = {
        "n_cohort": sens["n"] if sens else None,
        "n_followup": fu["n"] if fu else None,
        "deaths": fu["events"] if fu else None,
        "km": fu,
        "paper_os": paper_os,
        "pain_p": pain["rows"][0]["p"] if pain.get("available") else None,
        "reproduction": reproduction if reproduction["available"] else None,
        "n_flags": len(applies),
        "n_missing": sum(a["state"] != "ok" for a in availability),
    }

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(
        resources.files("idds.report").joinpath("templates/study.html").read_text(encoding="utf-8"))
    html = template.render(
        run_id=run_id, generated_at=datetime.now().strftime("%Y-%m-%d %H:%M"), version=__version__,
        citation=CITATION, overview=overview, availability=availability,
        missing=[a for a in availability if a["state"] != "ok"], cohort_present=cohort is not None,
        tables=tables, pain=pain, survival=survival,
        cox=cox, footnotes=notes.texts, set_aside=_set_aside_summary(con),
        implants=_implants_section(marts["implants_by_year"]), reproduction=reproduction,
        inconsistencies=applies, not_assessed=not_assessed, figures=figures,
        stratum_figures=stratum_figures,
    )
    path = out_dir / "study.html"
    path.write_text(html, encoding="utf-8")

    latest = reports_dir / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    if fig_dir.exists():
        _replace_dir(fig_dir, latest / "figures")
    elif (latest / "figures").exists():
        shutil.rmtree(latest / "figures")
    shutil.copy2(path, latest / "study.html")
    return path
