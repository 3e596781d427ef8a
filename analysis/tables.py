"""Tables 1-3 of the paper, recomputed, in the mart's long form.

Each function takes the cohort frame (one row per included patient, column names
of ``docs/cohort_variables.md``) and returns one row per reported statistic:

``row_order, section, variable, level, statistic, n, denominator, value, sd, q1,
q3, display, paper_display, matches_paper, note`` plus the extra columns
``paper_key, paper_source, ic_ids, value_type7, q1_type7, q3_type7, min, max``.

* ``statistic`` is ``n_pct`` (``value`` = exact percentage, ``n`` = count),
  ``mean_sd`` (``value`` = mean, ``sd`` with ddof = 1) or ``median_iqr``
  (``value``/``q1``/``q3`` by SPSS HAVERAGE = type 6; type 7 alongside).
* ``display`` uses the paper's precision with round-half-up; ``paper_display``
  is what the paper prints (empty where it prints nothing); ``matches_paper`` is
  nullable boolean (NA where there is nothing to compare).
* Rows concerned by a paper inconsistency carry its id (``IC-xx``) in ``ic_ids``
  and ``note``; a non-reproducible printed value is flagged, not hidden.

The input frame is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from . import paper as _paper
from .formatting import (
    as_bool,
    as_numeric,
    as_text,
    fmt_mean_sd,
    fmt_median_iqr,
    fmt_n_pct,
    quartiles,
    require_columns,
)

__all__ = [
    "TABLE_COLUMNS",
    "TABLE1_COLUMNS",
    "TABLE2_COLUMNS",
    "TABLE3_COLUMNS",
    "cancer_group",
    "table1",
    "table2",
    "table3",
]

#: Output columns, mart columns first.
TABLE_COLUMNS: tuple[str, ...] = (
    "row_order", "section", "variable", "level", "statistic", "n", "denominator", "value", "sd",
    "q1", "q3", "display", "paper_display", "matches_paper", "note",
    "paper_key", "paper_source", "ic_ids", "value_type7", "q1_type7", "q3_type7", "min", "max",
)

PAIN_SITES: tuple[str, ...] = (
    "pain_site_lumbosacral", "pain_site_abdomen", "pain_site_back", "pain_site_lower_limb",
    "pain_site_perineum", "pain_site_chest", "pain_site_head_neck", "pain_site_upper_limb",
)

#: Required input columns of :func:`table1` (``implant_year`` may be replaced by ``implant_date``).
TABLE1_COLUMNS: tuple[str, ...] = (
    "age_years", "sex", "bmi", "adl_barthel", "arrival_wheelchair_or_cart", "pressure_sore",
    "skin_compromising_line", "cancer_site", "cancer_duration_months", "metastasis_any",
    "met_bone", "met_liver", "met_lung", "prior_surgery", "prior_chemoradiotherapy",
    "prior_immunotherapy", *PAIN_SITES, "pain_duration_months", "pain_preceded_cancer",
    "baseline_ome_mg_per_day", "n_adjuvant_drugs", "prior_pain_intervention", "implant_reason",
)

#: Required input columns of :func:`table2` (``insertion_level_group`` may be replaced by
#: ``insertion_level``).
TABLE2_COLUMNS: tuple[str, ...] = (
    "itt_count", "itt_drug", "itt_dose_mg", "surgery_duration_hours", "catheter_cephalad",
    "catheter_tip_level", "tip_group", "idds_drug", "initial_daily_dose_mg", "los_days",
    "postop_los_days", "total_charge_cny", "self_pay_cny",
)

#: Required input columns of :func:`table3` (``os_months`` may be replaced by ``os_days``).
TABLE3_COLUMNS: tuple[str, ...] = (
    "followup_status", "baseline_nrs", "followup_nrs", "satisfied", "systemic_opioid_after",
    "os_event", "comp_pdph", "comp_fever", "comp_urinary_retention_constipation",
    "in_hospital_death", "comp_poor_wound_healing",
)

DAYS_PER_MONTH = 30.4375

GI_SITES = frozenset({"colorectal", "pancreas", "liver", "stomach", "oesophagus"})

_REASON_ALIASES = {
    "inadequate_pain_control": "inadequate_relief",
    "inadequate_control": "inadequate_relief",
    "opioid_side_effects": "side_effects",
}
_OPIOID_AFTER_ALIASES = {"lt100": "lt_100", "lt100_ome": "lt_100", "lt_100_ome": "lt_100",
                         "ge100": "ge_100"}
_DRUG_ALIASES = {"bupivacaine+morphine": "morphine+bupivacaine",
                 "morphine_bupivacaine": "morphine+bupivacaine",
                 "morphine + bupivacaine": "morphine+bupivacaine"}


def cancer_group(cancer_site: pd.Series) -> pd.Series:
    """Map ``cancer_site`` to ``lung`` / ``GI`` / ``other`` (a new Series).

    GI = colorectal, pancreas, liver, stomach, oesophagus. Missing stays missing.
    """
    def g(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return pd.NA
        s = str(v).strip().lower()
        if s == "lung":
            return "lung"
        if s in GI_SITES or s == "esophagus":
            return "GI"
        return "other"

    return cancer_site.map(g).astype("object").rename("cancer_group")


# ------------------------------------------------------------------------------------------
# row builder
# ------------------------------------------------------------------------------------------


@dataclass
class _Table:
    name: str
    rows: list[dict] = field(default_factory=list)

    def _base(self, section: str, variable: str, level: str, statistic: str) -> dict:
        row = {c: np.nan for c in TABLE_COLUMNS}
        row.update(row_order=len(self.rows) + 1, section=section, variable=variable, level=level,
                   statistic=statistic, display="", paper_display="", matches_paper=pd.NA, note="",
                   paper_key="", paper_source="", ic_ids="")
        return row

    @staticmethod
    def _finish(row: dict, key: str | None, note: str, ic: Sequence[str], matched: bool | None) -> dict:
        notes = [note] if note else []
        ics: list[str] = list(ic)
        if key:
            pv = _paper.paper_value(key)
            row["paper_key"] = key
            row["paper_source"] = pv.source
            row["paper_display"] = pv.display
            row["matches_paper"] = bool(matched)
            for i in pv.ic:
                if i not in ics:
                    ics.append(i)
            if pv.note:
                notes.append(pv.note)
        if ics:
            row["ic_ids"] = ",".join(ics)
            if key:
                status = "flagged, reproduced" if row["matches_paper"] else "flagged, not reproduced"
                notes.insert(0, f"{'/'.join(ics)} {status}: paper {row['paper_display']}, "
                                f"recomputed {row['display']}")
            else:
                notes.insert(0, "/".join(ics))
        row["note"] = "; ".join(notes)
        return row

    def cat(self, section: str, variable: str, level: str, n: int, denominator: int,
            key: str | None = None, note: str = "", ic: Sequence[str] = ()) -> None:
        row = self._base(section, variable, level, "n_pct")
        n = int(n)
        denominator = int(denominator)
        row.update(n=n, denominator=denominator)
        if denominator > 0:
            row["value"] = float(Fraction(100 * n, denominator))
            row["display"] = fmt_n_pct(n, denominator)
        matched = _paper.compare(key, n=n, denominator=denominator) if key else None
        self.rows.append(self._finish(row, key, note, ic, matched))

    def mean_sd(self, section: str, variable: str, level: str, values: pd.Series, dp: int,
                key: str | None = None, note: str = "", ic: Sequence[str] = (),
                thousands: bool = False, denominator: int | None = None) -> None:
        row = self._base(section, variable, level, "mean_sd")
        v = values.dropna().astype(float)
        row.update(n=int(v.size), denominator=int(denominator if denominator is not None else len(values)))
        mean = sd = np.nan
        if v.size:
            mean = float(v.mean())
            sd = float(v.std(ddof=1)) if v.size > 1 else np.nan
            row.update(value=mean, sd=sd, min=float(v.min()), max=float(v.max()),
                       display=fmt_mean_sd(mean, sd, dp, thousands))
        matched = _paper.compare(key, mean=mean, sd=sd) if key else None
        self.rows.append(self._finish(row, key, note, ic, matched))

    def median_iqr(self, section: str, variable: str, level: str, values: pd.Series, dp: int = 0,
                   key: str | None = None, note: str = "", ic: Sequence[str] = (),
                   denominator: int | None = None) -> None:
        row = self._base(section, variable, level, "median_iqr")
        v = values.dropna().astype(float)
        row.update(n=int(v.size), denominator=int(denominator if denominator is not None else len(values)))
        matched = None
        if v.size:
            qs = quartiles(v)
            row.update(value=qs.median, q1=qs.q1, q3=qs.q3, value_type7=qs.median_type7,
                       q1_type7=qs.q1_type7, q3_type7=qs.q3_type7, min=qs.minimum, max=qs.maximum,
                       display=fmt_median_iqr(qs.median, qs.q1, qs.q3, dp))
            if not qs.types_agree:
                t7 = fmt_median_iqr(qs.median_type7, qs.q1_type7, qs.q3_type7, dp)
                note = "; ".join(x for x in (note, f"type 7 gives {t7}") if x)
            if key:
                matched = _paper.compare(key, median=qs.median, q1=qs.q1, q3=qs.q3)
        elif key:
            matched = False
        self.rows.append(self._finish(row, key, note, ic, matched))

    def frame(self) -> pd.DataFrame:
        out = pd.DataFrame(self.rows, columns=list(TABLE_COLUMNS))
        out["row_order"] = out["row_order"].astype(int)
        out["n"] = out["n"].astype("Int64")
        out["denominator"] = out["denominator"].astype("Int64")
        out["matches_paper"] = out["matches_paper"].astype("boolean")
        for c in ("value", "sd", "q1", "q3", "value_type7", "q1_type7", "q3_type7", "min", "max"):
            out[c] = out[c].astype(float)
        return out


def _count(mask: pd.Series) -> tuple[int, int, str]:
    """(true count, non-missing denominator, note on missing) for a boolean Series."""
    m = mask.astype("boolean")
    n_missing = int(m.isna().sum())
    note = f"{n_missing} missing excluded from the denominator" if n_missing else ""
    return int(m.fillna(False).sum()), int(m.notna().sum()), note


def _bool_row(t: _Table, section: str, df: pd.DataFrame, col: str, where: str,
              key: str | None = None, level: str = "yes", note: str = "") -> None:
    n, d, miss = _count(as_bool(df[col], where))
    t.cat(section, col, level, n, d, key, "; ".join(x for x in (note, miss) if x))


def _implant_year(df: pd.DataFrame, where: str) -> pd.Series:
    if "implant_year" in df.columns:
        return as_numeric(df["implant_year"], where).astype("Int64")
    if "implant_date" in df.columns:
        return pd.to_datetime(df["implant_date"]).dt.year.astype("Int64")
    raise ValueError(f"{where}: missing required column(s) 'implant_year' (or 'implant_date')")


def _norm(series: pd.Series, aliases: dict[str, str] | None = None, lower: bool = True) -> pd.Series:
    s = as_text(series)

    def f(v: object) -> object:
        if not isinstance(v, str):
            return v
        k = v.lower() if lower else v
        return (aliases or {}).get(k, k)

    return s.map(f)


# ------------------------------------------------------------------------------------------
# Table 1
# ------------------------------------------------------------------------------------------


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 (patient characteristics, n = 96) with the §3.1-3.3 text values.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame, one row per included patient, with the columns of
        :data:`TABLE1_COLUMNS` and ``implant_year`` (or ``implant_date``).

    Returns
    -------
    pandas.DataFrame
        Long form, columns :data:`TABLE_COLUMNS`. Baseline OME is summarised twice
        (IC-06): over the opioid users (level ``opioid users``, primary) and over
        all patients (level ``all patients``).

    Raises
    ------
    ValueError
        If the input is not a non-empty DataFrame or a required column is missing
        or holds values of the wrong kind.
    """
    where = "table1"
    require_columns(df, TABLE1_COLUMNS, where)
    year = _implant_year(df, where)
    N = len(df)
    t = _Table("table1")

    sec = "Demographics"
    t.mean_sd(sec, "age_years", "", as_numeric(df["age_years"], where), 0, "age")
    sex = _norm(df["sex"], lower=False).map(lambda v: v.upper() if isinstance(v, str) else v)
    bad = set(sex.dropna()) - {"F", "M"}
    if bad:
        raise ValueError(f"{where}: column 'sex' holds values other than F/M: {sorted(bad)}")
    d_sex = int(sex.notna().sum())
    t.cat(sec, "sex", "F", int((sex == "F").sum()), d_sex, "sex_female")
    t.cat(sec, "sex", "M", int((sex == "M").sum()), d_sex, "sex_male")
    bmi = as_numeric(df["bmi"], where)
    t.mean_sd(sec, "bmi", "", bmi, 1, "bmi", note="min and max in the min/max columns")
    t.cat(sec, "underweight", "BMI < 18.5", int((bmi < 18.5).sum()), int(bmi.notna().sum()),
          "underweight")

    sec = "Functional status"
    adl = as_numeric(df["adl_barthel"], where)
    t.mean_sd(sec, "adl_barthel", "", adl, 0, "adl")
    t.cat(sec, "adl_lt60", "ADL < 60", int((adl < 60).sum()), int(adl.notna().sum()), "adl_lt60")
    _bool_row(t, sec, df, "arrival_wheelchair_or_cart", where, "wheelchair_or_cart")
    _bool_row(t, sec, df, "pressure_sore", where, "pressure_sore")
    _bool_row(t, sec, df, "skin_compromising_line", where, "skin_compromising_line")

    sec = "Implant year"
    d_year = int(year.notna().sum())
    for y in sorted(int(v) for v in year.dropna().unique()):
        key = f"implant_year_{y}" if f"implant_year_{y}" in _paper.PAPER else None
        t.cat(sec, "implant_year", str(y), int((year == y).sum()), d_year, key)

    sec = "Cancer type"
    site = _norm(df["cancer_site"])
    d_site = int(site.notna().sum())
    top5 = ("lung", "colorectal", "pancreas", "breast", "liver")
    for s in top5:
        t.cat(sec, "cancer_site", s, int((site == s).sum()), d_site, f"cancer_{s}")
    t.cat(sec, "cancer_site", "other", int((site.notna() & ~site.isin(top5)).sum()), d_site,
          note="all sites outside the top five (not printed)")
    t.median_iqr(sec, "cancer_duration_months", "", as_numeric(df["cancer_duration_months"], where),
                 0, "cancer_duration")

    sec = "Metastasis"
    _bool_row(t, sec, df, "metastasis_any", where, "metastasis_any")
    _bool_row(t, sec, df, "met_bone", where, "met_bone", level="bone")
    _bool_row(t, sec, df, "met_liver", where, "met_liver", level="liver")
    _bool_row(t, sec, df, "met_lung", where, "met_lung", level="lung")

    sec = "Prior cancer treatment"
    prior = {c: as_bool(df[c], where) for c in
             ("prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy")}
    for c, s in prior.items():
        n, d, miss = _count(s)
        t.cat(sec, c, "yes", n, d, c, miss)
    any_prior = prior["prior_surgery"].fillna(False) | prior["prior_chemoradiotherapy"].fillna(False) \
        | prior["prior_immunotherapy"].fillna(False)
    t.cat(sec, "prior_any_antineoplastic", "yes", int(any_prior.sum()), N, "prior_any_antineoplastic",
          "union of surgery, chemoradiotherapy and immunotherapy")

    sec = "Pain"
    for c in PAIN_SITES:
        _bool_row(t, sec, df, c, where, c, level=c.removeprefix("pain_site_"))
    t.median_iqr(sec, "pain_duration_months", "", as_numeric(df["pain_duration_months"], where), 0,
                 "pain_duration")
    _bool_row(t, sec, df, "pain_preceded_cancer", where, "pain_preceded_cancer")

    sec = "Opioids and adjuvants"
    ome = as_numeric(df["baseline_ome_mg_per_day"], where)
    if "systemic_opioid_user" in df.columns:
        known = as_bool(df["systemic_opioid_user"], where)
    else:
        known = (ome > 0).where(ome.notna())
    user = known.fillna(False).astype(bool)  # a value set aside (missing) is no known user
    d_ome = int(ome.notna().sum())
    t.cat(sec, "systemic_opioid_user", "yes", int(user.sum()), int(known.notna().sum()), "systemic_opioid_user")
    t.median_iqr(sec, "baseline_ome_mg_per_day", "opioid users", ome[user], 0, "ome",
                 note=f"primary: median over the {int(user.sum())} opioid users")
    t.median_iqr(sec, "baseline_ome_mg_per_day", "all patients", ome, 0, "ome",
                 note=f"all {d_ome} patients, non-users counted as 0 mg/d")
    t.cat(sec, "ome_gt200", "OME > 200 mg/d", int((ome > 200).sum()), d_ome, "ome_gt200")
    t.cat(sec, "ome_gt500", "OME > 500 mg/d", int((ome > 500).sum()), d_ome, "ome_gt500")
    adj = as_numeric(df["n_adjuvant_drugs"], where)
    t.cat(sec, "n_adjuvant_drugs", ">= 1", int((adj >= 1).sum()), int(adj.notna().sum()),
          "adjuvant_ge1")
    _bool_row(t, sec, df, "prior_pain_intervention", where, "prior_pain_intervention")

    sec = "Reason for IDDS"
    reason = _norm(df["implant_reason"], _REASON_ALIASES)
    d_reason = int(reason.notna().sum())
    t.cat(sec, "implant_reason", "inadequate_relief", int((reason == "inadequate_relief").sum()),
          d_reason, "reason_inadequate_relief")
    t.cat(sec, "implant_reason", "side_effects", int((reason == "side_effects").sum()), d_reason,
          "reason_side_effects")
    others = reason.notna() & ~reason.isin(["inadequate_relief", "side_effects"])
    if others.any():
        t.cat(sec, "implant_reason", "other", int(others.sum()), d_reason)
    return t.frame()


# ------------------------------------------------------------------------------------------
# Table 2
# ------------------------------------------------------------------------------------------


def _insertion_group(df: pd.DataFrame, where: str) -> pd.Series:
    if "insertion_level_group" in df.columns:
        return _norm(df["insertion_level_group"], lower=False).map(
            lambda v: v if not isinstance(v, str) else ("other" if v.lower() == "other" else v.upper()))
    if "insertion_level" in df.columns:
        lv = _norm(df["insertion_level"], lower=False)
        return lv.map(lambda v: v if not isinstance(v, str) else
                      (v.upper() if v.upper() in ("L2-L3", "L3-L4") else "other"))
    raise ValueError(f"{where}: missing required column(s) 'insertion_level_group' (or 'insertion_level')")


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Table 2 (operation-related values, n = 96) with the §3.1/§3.4-3.5 text values.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with the columns of :data:`TABLE2_COLUMNS` and
        ``insertion_level_group`` (or ``insertion_level``).

    Returns
    -------
    pandas.DataFrame
        Long form, columns :data:`TABLE_COLUMNS`. ITT drug shares are given over
        all patients (as printed) and over trial recipients (IC-09); the initial
        IDDS morphine dose over morphine-only pumps (primary) and over morphine
        and morphine + bupivacaine pumps (IC-08); post-operative stay is added
        (IC-17).

    Raises
    ------
    ValueError
        If the input is not a non-empty DataFrame or a required column is missing.
    """
    where = "table2"
    require_columns(df, TABLE2_COLUMNS, where)
    ins = _insertion_group(df, where)
    N = len(df)
    t = _Table("table2")

    sec = "Intrathecal screening trial"
    itt = as_numeric(df["itt_count"], where)
    d_itt = int(itt.notna().sum())
    for k in (0, 1, 2):
        t.cat(sec, "itt_count", str(k), int((itt == k).sum()), d_itt, f"itt_count_{k}")
    if (itt >= 3).any():
        t.cat(sec, "itt_count", "3+", int((itt >= 3).sum()), d_itt)
    n_any = int((itt >= 1).sum())
    t.cat(sec, "itt_any", ">= 1", n_any, d_itt, "itt_any")
    drug = _norm(df["itt_drug"])
    dose = as_numeric(df["itt_dose_mg"], where)
    for d in ("morphine", "hydromorphone", "bupivacaine"):
        t.cat(sec, "itt_drug", d, int((drug == d).sum()), N, f"itt_drug_{d}",
              note="denominator: all patients, as printed")
    for d in ("morphine", "hydromorphone", "bupivacaine"):
        t.cat(sec, "itt_drug", f"{d} (among trial recipients)", int((drug == d).sum()),
              int(drug.notna().sum()), ic=("IC-09",), note="denominator: patients with a trial")
    m = drug == "morphine"
    t.mean_sd(sec, "itt_dose_mg", "morphine", dose[m], 2, "itt_dose_morphine")
    h = drug == "hydromorphone"
    t.mean_sd(sec, "itt_dose_mg", "hydromorphone", dose[h], 2, "itt_dose_hydromorphone")

    sec = "Surgery"
    t.mean_sd(sec, "surgery_duration_hours", "", as_numeric(df["surgery_duration_hours"], where), 2,
              "surgery_duration")
    d_ins = int(ins.notna().sum())
    t.cat(sec, "insertion_level_group", "L2-L3", int((ins == "L2-L3").sum()), d_ins, "insertion_L2-L3")
    t.cat(sec, "insertion_level_group", "L3-L4", int((ins == "L3-L4").sum()), d_ins, "insertion_L3-L4")
    t.cat(sec, "insertion_level_group", "other", int((ins == "other").sum()), d_ins, "insertion_other")
    _bool_row(t, sec, df, "catheter_cephalad", where, "catheter_cephalad")
    tip = _norm(df["tip_group"], lower=False)
    d_tip = int(tip.notna().sum())
    for g in ("T1_T5", "T6_T9", "T10_or_lower"):
        t.cat(sec, "tip_group", g, int((tip == g).sum()), d_tip, f"tip_{g}")
    lvl = _norm(df["catheter_tip_level"], lower=False).map(
        lambda v: v.upper() if isinstance(v, str) else v)
    t.cat(sec, "catheter_tip_level", "T6", int((lvl == "T6").sum()), int(lvl.notna().sum()), "tip_T6")

    sec = "IDDS drug"
    idds = _norm(df["idds_drug"], _DRUG_ALIASES)
    d_idds = int(idds.notna().sum())
    for d, key in (("morphine", "idds_drug_morphine"), ("hydromorphone", "idds_drug_hydromorphone"),
                   ("bupivacaine", "idds_drug_bupivacaine"),
                   ("morphine+bupivacaine", "idds_drug_morphine_bupivacaine")):
        t.cat(sec, "idds_drug", d, int((idds == d).sum()), d_idds, key)
    init = as_numeric(df["initial_daily_dose_mg"], where)
    mo = idds == "morphine"
    t.mean_sd(sec, "initial_daily_dose_mg", "morphine", init[mo], 2, "idds_init_morphine",
              note="primary: morphine-only pumps")
    mb = idds.isin(["morphine", "morphine+bupivacaine"])
    t.mean_sd(sec, "initial_daily_dose_mg", "morphine incl. morphine+bupivacaine", init[mb], 2,
              "idds_init_morphine", note="alternative denominator: morphine-containing pumps")
    hm = idds == "hydromorphone"
    t.mean_sd(sec, "initial_daily_dose_mg", "hydromorphone", init[hm], 2, "idds_init_hydromorphone")

    sec = "Stay and cost"
    t.mean_sd(sec, "los_days", "", as_numeric(df["los_days"], where), 0, "los_total")
    t.mean_sd(sec, "postop_los_days", "", as_numeric(df["postop_los_days"], where), 0, "los_postop",
              note="Table 2-ext (text only)")
    t.mean_sd(sec, "total_charge_cny", "", as_numeric(df["total_charge_cny"], where), 0, "cost_total",
              thousands=True)
    t.mean_sd(sec, "self_pay_cny", "", as_numeric(df["self_pay_cny"], where), 0, "cost_self_pay",
              thousands=True)
    return t.frame()


# ------------------------------------------------------------------------------------------
# Table 3
# ------------------------------------------------------------------------------------------

FOLLOWUP_LEVELS = ("followed", "periop_death", "explanted", "lost_or_refused")


def _os_months(df: pd.DataFrame, where: str) -> pd.Series:
    if "os_months" in df.columns:
        return as_numeric(df["os_months"], where)
    if "os_days" in df.columns:
        return as_numeric(df["os_days"], where) / DAYS_PER_MONTH
    raise ValueError(f"{where}: missing required column(s) 'os_months' (or 'os_days')")


def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Table 3 (follow-up and outcomes, n = 72) with §3.6-3.7 complications and follow-up.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame (all included patients) with the columns of
        :data:`TABLE3_COLUMNS` and ``os_months`` (or ``os_days``). The
        follow-up set is ``followup_status == "followed"``.

    Returns
    -------
    pandas.DataFrame
        Long form, columns :data:`TABLE_COLUMNS`. The row "Months from implant to
        death/last visit" is the *descriptive* median (IQR) of the follow-up set's
        observed times (deaths and censorings mixed, SPSS HAVERAGE), labelled as
        in the paper and flagged IC-10; the Kaplan-Meier median is in
        :func:`analysis.survival.km_summary`.

    Raises
    ------
    ValueError
        If the input is not a non-empty DataFrame or a required column is missing.
    """
    where = "table3"
    require_columns(df, TABLE3_COLUMNS, where)
    os_m = _os_months(df, where)
    N = len(df)
    status = _norm(df["followup_status"])
    unknown = set(status.dropna()) - set(FOLLOWUP_LEVELS)
    if unknown:
        raise ValueError(f"{where}: column 'followup_status' holds unknown values {sorted(unknown)}")
    fu = (status == "followed").to_numpy()
    n_fu = int(fu.sum())
    t = _Table("table3")

    sec = "Follow-up (all patients)"
    t.cat(sec, "followup_status", "followed", n_fu, N, "followed")
    for lv in FOLLOWUP_LEVELS[1:]:
        t.cat(sec, "followup_status", lv, int((status == lv).sum()), N)
    t.cat(sec, "followup_status", "not followed", N - n_fu, N, "not_followed",
          note="perioperative death, explant and lost or refused")

    sec = "Complications (all patients)"
    for c in ("comp_pdph", "comp_fever", "comp_urinary_retention_constipation", "in_hospital_death",
              "comp_poor_wound_healing"):
        _bool_row(t, sec, df, c, where, c)

    sec = "Follow-up outcomes (followed patients)"
    sub = df.loc[fu]
    if n_fu == 0:
        raise ValueError(f"{where}: no patient has followup_status 'followed'")
    t.mean_sd(sec, "baseline_nrs", "NRS at surgery", as_numeric(sub["baseline_nrs"], where), 1,
              "nrs_before")
    t.mean_sd(sec, "followup_nrs", "NRS at follow-up", as_numeric(sub["followup_nrs"], where), 1,
              "nrs_after")
    sat = as_bool(sub["satisfied"], where)
    n_sat, d_sat, miss = _count(sat)
    t.cat(sec, "satisfied", "yes", n_sat, d_sat, "satisfied", miss)
    t.cat(sec, "satisfied", "no", int((sat == False).sum()), d_sat, "unsatisfied")  # noqa: E712

    after = _norm(sub["systemic_opioid_after"], _OPIOID_AFTER_ALIASES)
    d_after = int(after.notna().sum())
    ic12 = ""
    if "systemic_opioid_user" in df.columns:
        users_fu = int(as_bool(sub["systemic_opioid_user"], where).fillna(False).sum())
        ic12 = f"{users_fu} baseline opioid users among the {n_fu} followed"
    n_stop = int((after == "stopped").sum())
    n_lt = int((after == "lt_100").sum())
    t.cat(sec, "systemic_opioid_after", "stopped", n_stop, d_after, "opioid_after_stopped", ic12)
    t.cat(sec, "systemic_opioid_after", "lt_100", n_lt, d_after, "opioid_after_lt_100")
    t.cat(sec, "systemic_opioid_after", "stopped or lt_100", n_stop + n_lt, d_after,
          "opioid_after_stopped_or_less")
    t.cat(sec, "systemic_opioid_after", "other", d_after - n_stop - n_lt, d_after,
          note="ge_100 or other (not printed)", ic=("IC-12",))

    ev = as_numeric(sub["os_event"], where)
    if not set(ev.dropna().unique()) <= {0.0, 1.0}:
        raise ValueError(f"{where}: column 'os_event' must hold 0/1")
    d_ev = int(ev.notna().sum())
    t.cat(sec, "os_event", "died", int((ev == 1).sum()), d_ev, "deaths_followup")
    t.cat(sec, "os_event", "censored (alive at last contact)", int((ev == 0).sum()), d_ev)
    t.median_iqr(sec, "os_months", "Months from implant to death/last visit", os_m[fu], 0,
                 "os_descriptive",
                 note="descriptive median (IQR) of observed times, deaths and censorings mixed; "
                      "Kaplan-Meier in survival_summary")
    return t.frame()
