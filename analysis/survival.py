"""Overall survival after implantation: analysis sets, Kaplan-Meier curves and summaries.

Definitions (origin = implant date; event = death from any cause; months = days /
30.4375):

* **follow-up set** (the paper's, n = 72): ``followup_status == "followed"``,
  times ``os_days`` / ``os_event`` as in the cohort frame.
* **sensitivity set** (all included patients, IC-11): the perioperative death is
  an event at its ``os_days``; the explanted patient is censored at
  ``explant_date``; lost patients are censored at their last contact (the
  cohort frame's ``os_days``).

Kaplan-Meier estimates come from :class:`lifelines.KaplanMeierFitter` with its
pointwise exponential-Greenwood (log-log) 95 % bands. Survival quantiles are read
as the first time at which S(t) <= p, with a 1e-10 tolerance so that a curve
landing *exactly* on p (S = 54/72 = 0.75 computed as 0.7500000000000001) is
treated consistently; ``inf`` means "not reached". ``t_s075`` and ``t_s025`` are
the times where survival falls to 0.75 and 0.25 (the "IQR" of survival time).
The median's CI is read where the bands cross 0.5 (equivalent to the
Brookmeyer-Crowley test inversion on the complementary log-log scale,
statsmodels ``quantile_ci(method="cloglog")``).

lifelines' ``ApproximationWarning`` is silenced explicitly around its calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.exceptions import ApproximationWarning
from lifelines.statistics import multivariate_logrank_test

from .formatting import (
    as_bool,
    as_numeric,
    as_text,
    fmt_median_iqr,
    fmt_number,
    fmt_p,
    quartiles,
    require_columns,
)
from .tables import DAYS_PER_MONTH, cancer_group

__all__ = [
    "ANALYSIS_SETS",
    "DEFAULT_STRATA",
    "SURVIVAL_KM_COLUMNS",
    "SURVIVAL_SUMMARY_COLUMNS",
    "KMFit",
    "SurvivalSets",
    "descriptive_times",
    "fit_km",
    "km_curves",
    "km_quantile",
    "km_summary",
    "logrank_tests",
    "strata_frame",
    "survival_sets",
]

ANALYSIS_SETS: tuple[str, ...] = ("followup", "sensitivity")

#: Default stratification variables (exploratory, not in the paper).
DEFAULT_STRATA: tuple[str, ...] = (
    "cancer_group", "adl_lt60", "metastasis_any", "met_bone", "ome_gt200", "implant_year",
)

_STRATUM_SOURCES: dict[str, tuple[str, ...]] = {
    "cancer_group": ("cancer_site",),
    "adl_lt60": ("adl_barthel",),
    "metastasis_any": ("metastasis_any",),
    "met_bone": ("met_bone",),
    "ome_gt200": ("baseline_ome_mg_per_day",),
    "implant_year": ("implant_date",),  # or implant_year
    "underweight": ("bmi",),
    "itt_any": ("itt_count",),
}

SURVIVAL_KM_COLUMNS: tuple[str, ...] = (
    "analysis_set", "stratum", "time_months", "n_at_risk", "n_events", "n_censored", "survival",
    "ci_low", "ci_high", "time_days",
)

SURVIVAL_SUMMARY_COLUMNS: tuple[str, ...] = (
    "analysis_set", "stratum", "n", "n_events", "median_months", "median_ci_low", "median_ci_high",
    "t_s075_months", "t_s025_months",
    "variable", "level", "n_censored",
    "surv_6m", "surv_6m_ci_low", "surv_6m_ci_high", "surv_12m", "surv_12m_ci_low", "surv_12m_ci_high",
    "median_followup_months", "censored_min_months", "censored_max_months",
    "desc_median_months", "desc_q1_months", "desc_q3_months",
    "desc_median_months_type7", "desc_q1_months_type7", "desc_q3_months_type7",
    "logrank_p", "display", "median_ci_display", "note",
)

_BASE_COLUMNS: tuple[str, ...] = ("followup_status", "os_event", "implant_date", "explant_date")

_QUANTILE_TOL = 1e-10


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximationWarning)
        yield


# ------------------------------------------------------------------------------------------
# analysis sets
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurvivalSets:
    """The two survival analysis sets.

    Attributes
    ----------
    followup, sensitivity : pandas.DataFrame
        One row per patient: the input columns plus ``time_days``,
        ``time_months`` (float) and ``event`` (int 0/1), and the stratification
        columns of :func:`strata_frame` that could be derived. New frames.
    """

    followup: pd.DataFrame
    sensitivity: pd.DataFrame

    def get(self, name: str) -> pd.DataFrame:
        """The set called ``name`` (``followup`` or ``sensitivity``)."""
        if name not in ANALYSIS_SETS:
            raise ValueError(f"unknown analysis set {name!r}; expected one of {ANALYSIS_SETS}")
        return getattr(self, name)

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        """``[(name, frame), ...]`` in the order of :data:`ANALYSIS_SETS`."""
        return [(n, self.get(n)) for n in ANALYSIS_SETS]


def _os_days(df: pd.DataFrame, where: str) -> pd.Series:
    if "os_days" in df.columns:
        return as_numeric(df["os_days"], where)
    if "os_months" in df.columns:
        return as_numeric(df["os_months"], where) * DAYS_PER_MONTH
    raise ValueError(f"{where}: missing required column(s) 'os_days' (or 'os_months')")


def strata_frame(df: pd.DataFrame, strata: Sequence[str] = DEFAULT_STRATA,
                 where: str = "strata_frame") -> pd.DataFrame:
    """Derive the stratification variables (a new frame, same index).

    ``cancer_group`` = lung / GI / other (GI = colorectal, pancreas, liver, stomach,
    oesophagus); ``adl_lt60`` = Barthel < 60; ``metastasis_any``, ``met_bone`` as
    given; ``ome_gt200`` = baseline OME > 200 mg/d over all patients (non-users
    count as <= 200); ``implant_year``; ``underweight`` = BMI < 18.5;
    ``itt_any`` = at least one ITT. Booleans become the strings ``"true"`` /
    ``"false"``.

    Raises
    ------
    ValueError
        For an unknown stratum or a missing source column (named).
    """
    out = pd.DataFrame(index=df.index)
    for s in strata:
        if s not in _STRATUM_SOURCES:
            raise ValueError(f"{where}: unknown stratum {s!r}; known: {sorted(_STRATUM_SOURCES)}")
        if s == "implant_year":
            if "implant_year" in df.columns:
                y = as_numeric(df["implant_year"], where)
            elif "implant_date" in df.columns:
                y = pd.to_datetime(df["implant_date"]).dt.year.astype(float)
            else:
                raise ValueError(f"{where}: missing required column(s) 'implant_year' (or 'implant_date')")
            out[s] = y.map(lambda v: str(int(v)) if v == v else pd.NA).astype("object")
            continue
        require_columns(df, _STRATUM_SOURCES[s], where)
        if s == "cancer_group":
            v = cancer_group(df["cancer_site"])
        elif s == "adl_lt60":
            a = as_numeric(df["adl_barthel"], where)
            v = (a < 60).where(a.notna())
        elif s in ("metastasis_any", "met_bone"):
            v = as_bool(df[s], where)
        elif s == "ome_gt200":
            o = as_numeric(df["baseline_ome_mg_per_day"], where)
            v = (o > 200).where(o.notna())
        elif s == "underweight":
            b = as_numeric(df["bmi"], where)
            v = (b < 18.5).where(b.notna())
        else:  # itt_any
            c = as_numeric(df["itt_count"], where)
            v = (c >= 1).where(c.notna())
        if s != "cancer_group":
            v = v.map(lambda x: pd.NA if x is None or x is pd.NA or (isinstance(x, float) and x != x)
                      else ("true" if bool(x) else "false")).astype("object")
        out[s] = v
    return out


def survival_sets(df: pd.DataFrame, strata: Sequence[str] | None = None) -> SurvivalSets:
    """Build the follow-up and sensitivity survival sets.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with ``followup_status``, ``os_event``, ``os_days`` (or
        ``os_months``), ``implant_date`` and ``explant_date``.
    strata : sequence of str, optional
        Stratification variables to derive (see :func:`strata_frame`); by default
        those of :data:`DEFAULT_STRATA` whose source columns are present.

    Returns
    -------
    SurvivalSets

    Patients whose survival time or event is missing (set aside by a data-quality rule)
    or whose time is negative are left out of both sets.

    Raises
    ------
    ValueError
        On a missing column, an ``os_event`` other than 0/1, or
        an empty follow-up set.
    """
    where = "survival_sets"
    require_columns(df, _BASE_COLUMNS, where)
    days = _os_days(df, where)
    event = as_numeric(df["os_event"], where)
    # a survival time or event set aside (NULL), or a negative time a steward waived, leaves
    # the patient out of both sets: nothing can be estimated from it
    known = (days.notna() & event.notna() & (days >= 0)).to_numpy()
    if not known.all():
        df, days, event = df.loc[known], days.loc[known], event.loc[known]
    if not set(event.unique()) <= {0.0, 1.0}:
        raise ValueError(f"{where}: column 'os_event' must hold 0/1 for every patient")
    status = as_text(df["followup_status"]).map(lambda v: v.lower() if isinstance(v, str) else v)

    if strata is None:
        strata = [s for s in DEFAULT_STRATA
                  if all(c in df.columns for c in _STRATUM_SOURCES[s])
                  or (s == "implant_year" and "implant_year" in df.columns)]
    st = strata_frame(df, strata, where)

    base = df.copy()
    for c in st.columns:
        base[f"stratum_{c}"] = st[c]
    base["time_days"] = days.astype(float)
    base["event"] = event.astype(int)

    fu = base.loc[(status == "followed").to_numpy()].copy()
    if fu.empty:
        raise ValueError(f"{where}: no patient has followup_status 'followed'")

    sens = base.copy()
    implant = pd.to_datetime(df["implant_date"])
    explant = pd.to_datetime(df["explant_date"])
    exp_days = (explant - implant).dt.days.astype(float)
    cens = (explant.notna() & (exp_days <= sens["time_days"])).to_numpy()
    sens.loc[cens, "time_days"] = exp_days[cens]
    sens.loc[cens, "event"] = 0
    for frame in (fu, sens):
        frame["time_months"] = frame["time_days"] / DAYS_PER_MONTH
    return SurvivalSets(followup=fu, sensitivity=sens)


# ------------------------------------------------------------------------------------------
# Kaplan-Meier
# ------------------------------------------------------------------------------------------


def km_quantile(times: np.ndarray, surv: np.ndarray, p: float) -> float:
    """First time at which a step survival curve is <= ``p`` (``inf`` if never).

    Parameters
    ----------
    times : array
        Increasing times of the step function.
    surv : array
        Survival (or a confidence band) at those times.
    p : float
        Survival level in (0, 1).

    Returns
    -------
    float
    """
    idx = np.flatnonzero(np.asarray(surv, dtype=float) <= p + _QUANTILE_TOL)
    return float(np.asarray(times, dtype=float)[idx[0]]) if idx.size else float("inf")


@dataclass(frozen=True)
class KMFit:
    """A fitted Kaplan-Meier curve (times in days).

    Attributes
    ----------
    kmf : lifelines.KaplanMeierFitter
    times_days : ndarray
        Timeline (0 and every observed time).
    survival, ci_low, ci_high : ndarray
        Estimate and 95 % log-log band at ``times_days``.
    n, n_events : int
    """

    kmf: KaplanMeierFitter
    times_days: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int
    n_events: int

    def quantile_days(self, p: float) -> float:
        """Time (days) where survival first falls to ``p`` or below."""
        return km_quantile(self.times_days, self.survival, p)

    def median_ci_days(self) -> tuple[float, float]:
        """95 % CI of the median (days): where the lower / upper bands reach 0.5."""
        return (km_quantile(self.times_days, self.ci_low, 0.5),
                km_quantile(self.times_days, self.ci_high, 0.5))

    def at(self, t_days: float) -> tuple[float, float, float]:
        """(S, lower, upper) at ``t_days``; NaN beyond the last observed time."""
        if t_days > self.times_days[-1]:
            return (np.nan, np.nan, np.nan)
        i = int(np.searchsorted(self.times_days, t_days, side="right") - 1)
        return (float(self.survival[i]), float(self.ci_low[i]), float(self.ci_high[i]))


def fit_km(time_days: Sequence[float], event: Sequence[int], alpha: float = 0.05,
           label: str = "KM") -> KMFit:
    """Fit a Kaplan-Meier curve with lifelines.

    Parameters
    ----------
    time_days : sequence of float
        Follow-up times (days), >= 0.
    event : sequence of int
        1 = death, 0 = censored.
    alpha : float, default 0.05
        1 - confidence level of the pointwise bands.
    label : str

    Returns
    -------
    KMFit

    Raises
    ------
    ValueError
        On empty input, unequal lengths, negative times or non-0/1 events.
    """
    t = np.asarray(time_days, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.size == 0 or t.size != e.size:
        raise ValueError("fit_km: time and event must be non-empty and of equal length")
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("fit_km: times must be non-missing and >= 0")
    if not set(np.unique(e)) <= {0.0, 1.0}:
        raise ValueError("fit_km: events must be 0/1")
    with _quiet():
        kmf = KaplanMeierFitter(alpha=alpha, label=label).fit(t, e.astype(bool))
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_survival_function_.reindex(sf.index)
    return KMFit(kmf=kmf, times_days=sf.index.to_numpy(dtype=float), survival=sf.to_numpy(dtype=float),
                 ci_low=ci.iloc[:, 0].to_numpy(dtype=float), ci_high=ci.iloc[:, 1].to_numpy(dtype=float),
                 n=int(t.size), n_events=int(e.sum()))


def _groups(sets: SurvivalSets, strata: Sequence[str]) -> Iterator[tuple[str, str, str, str, pd.DataFrame]]:
    """Yield (analysis_set, stratum label, variable, level, frame)."""
    for name, frame in sets.items():
        yield name, "overall", "", "", frame
        for s in strata:
            col = f"stratum_{s}"
            if col not in frame.columns:
                continue
            levels = sorted({str(v) for v in frame[col].dropna()})
            for lv in levels:
                yield name, f"{s}={lv}", s, lv, frame.loc[frame[col].astype("object") == lv]


def _strata_for(df: pd.DataFrame, strata: Sequence[str] | None) -> list[str]:
    return list(DEFAULT_STRATA if strata is None else strata)


def km_curves(df: pd.DataFrame, strata: Sequence[str] | None = None) -> pd.DataFrame:
    """Kaplan-Meier step functions for both analysis sets, overall and by stratum.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame (see :func:`survival_sets`) plus the source columns of the
        requested strata (``cancer_site``, ``adl_barthel``, ``metastasis_any``,
        ``met_bone``, ``baseline_ome_mg_per_day``, ``implant_year`` or
        ``implant_date`` for the defaults).
    strata : sequence of str, optional
        Stratification variables; default :data:`DEFAULT_STRATA`; ``()`` for
        the overall curves only.

    Returns
    -------
    pandas.DataFrame
        The ``survival_km`` mart: one row per curve step (time 0 and every
        observed time), columns :data:`SURVIVAL_KM_COLUMNS`. ``n_at_risk`` is the
        number at risk just before the time; ``ci_low``/``ci_high`` the 95 %
        exponential-Greenwood (log-log) band.

    Raises
    ------
    ValueError
        On a missing column or invalid times/events.
    """
    strata = _strata_for(df, strata)
    sets = survival_sets(df, strata)
    parts = []
    for name, label, _var, _lv, frame in _groups(sets, strata):
        if frame.empty:
            continue
        fit = fit_km(frame["time_days"], frame["event"], label=label)
        et = fit.kmf.event_table.reindex(fit.times_days)
        parts.append(pd.DataFrame({
            "analysis_set": name, "stratum": label,
            "time_months": fit.times_days / DAYS_PER_MONTH,
            "n_at_risk": et["at_risk"].to_numpy(dtype=int),
            "n_events": et["observed"].to_numpy(dtype=int),
            "n_censored": et["censored"].to_numpy(dtype=int),
            "survival": fit.survival, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
            "time_days": fit.times_days,
        }))
    out = pd.concat(parts, ignore_index=True)
    return out[list(SURVIVAL_KM_COLUMNS)]


def logrank_tests(df: pd.DataFrame, strata: Sequence[str] | None = None) -> pd.DataFrame:
    """Log-rank tests between the levels of each stratification variable.

    Uses :func:`lifelines.statistics.multivariate_logrank_test` (k-group test,
    k - 1 degrees of freedom) in each analysis set. Exploratory: not in the paper.

    Parameters
    ----------
    df : pandas.DataFrame
        As for :func:`km_curves`.
    strata : sequence of str, optional
        Default :data:`DEFAULT_STRATA`.

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis_set, variable, n_groups, n, n_events, test_statistic,
        degrees_freedom, p_value, p_display``.
    """
    strata = _strata_for(df, strata)
    sets = survival_sets(df, strata)
    rows = []
    for name, frame in sets.items():
        for s in strata:
            col = f"stratum_{s}"
            sub = frame.loc[frame[col].notna()]
            k = int(sub[col].nunique())
            row = dict(analysis_set=name, variable=s, n_groups=k, n=int(len(sub)),
                       n_events=int(sub["event"].sum()), test_statistic=np.nan,
                       degrees_freedom=np.nan, p_value=np.nan, p_display="")
            if k >= 2 and sub["event"].sum() > 0:
                with _quiet():
                    res = multivariate_logrank_test(sub["time_days"].to_numpy(float),
                                                    sub[col].astype(str).to_numpy(),
                                                    sub["event"].to_numpy(int))
                row.update(test_statistic=float(res.test_statistic),
                           degrees_freedom=float(res.degrees_of_freedom),
                           p_value=float(res.p_value), p_display=fmt_p(float(res.p_value)))
            rows.append(row)
    return pd.DataFrame(rows, columns=["analysis_set", "variable", "n_groups", "n", "n_events",
                                       "test_statistic", "degrees_freedom", "p_value", "p_display"])


def descriptive_times(df: pd.DataFrame) -> pd.DataFrame:
    """Descriptive median (IQR) of observed times, as in the paper's Table 3 (IC-10).

    "Months from implant to death/last visit": quantiles of the observed times
    (deaths and censorings mixed) by SPSS HAVERAGE (type 6), type 7 alongside.
    This is *not* a survival estimate; compare it with the Kaplan-Meier
    quartiles of :func:`km_summary`.

    Parameters
    ----------
    df : pandas.DataFrame
        As for :func:`survival_sets`.

    Returns
    -------
    pandas.DataFrame
        One row per analysis set: ``analysis_set, label, n, median_months,
        q1_months, q3_months, median_months_type7, q1_months_type7,
        q3_months_type7, display, note``.
    """
    sets = survival_sets(df, strata=())
    rows = []
    for name, frame in sets.items():
        q = quartiles(frame["time_months"])
        rows.append(dict(analysis_set=name, label="Months from implant to death/last visit", n=q.n,
                         median_months=q.median, q1_months=q.q1, q3_months=q.q3,
                         median_months_type7=q.median_type7, q1_months_type7=q.q1_type7,
                         q3_months_type7=q.q3_type7, display=fmt_median_iqr(q.median, q.q1, q.q3, 0),
                         note="IC-10: descriptive quantiles of mixed death and censoring times "
                              "(SPSS HAVERAGE), not Kaplan-Meier"))
    return pd.DataFrame(rows)


def _fmt_months(x: float, dp: int) -> str:
    return "NR" if np.isinf(x) else ("" if x != x else fmt_number(x, dp))


def km_summary(df: pd.DataFrame, strata: Sequence[str] | None = None) -> pd.DataFrame:
    """One summary row per Kaplan-Meier curve (the ``survival_summary`` mart).

    Parameters
    ----------
    df : pandas.DataFrame
        As for :func:`km_curves`.
    strata : sequence of str, optional
        Default :data:`DEFAULT_STRATA`; ``()`` for the overall curves only.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SURVIVAL_SUMMARY_COLUMNS`: ``n``, ``n_events``,
        ``median_months`` with its 95 % CI, ``t_s075_months`` / ``t_s025_months``
        (times where survival falls to 0.75 / 0.25; ``inf`` = not reached),
        6- and 12-month survival with 95 % CI (NaN beyond the last observed
        time), the reverse-KM median potential follow-up, the range of censored
        times, the descriptive Table-3 quantiles of observed times (IC-10, type 6
        and type 7), the log-rank p of the stratum's variable, and displays
        (``display`` = "median (t_S075–t_S025)" at 0 dp, as the paper prints).

    Raises
    ------
    ValueError
        On a missing column or invalid times/events.
    """
    strata = _strata_for(df, strata)
    sets = survival_sets(df, strata)
    lr = logrank_tests(df, strata) if strata else pd.DataFrame(columns=["analysis_set", "variable",
                                                                          "p_value"])
    lr_p = {(r.analysis_set, r.variable): r.p_value for r in lr.itertuples()}
    rows = []
    for name, label, var, lv, frame in _groups(sets, strata):
        if frame.empty:
            continue
        fit = fit_km(frame["time_days"], frame["event"], label=label)
        med = fit.quantile_days(0.5)
        lo, hi = fit.median_ci_days()
        t75 = fit.quantile_days(0.75)
        t25 = fit.quantile_days(0.25)
        s6 = fit.at(6 * DAYS_PER_MONTH)
        s12 = fit.at(12 * DAYS_PER_MONTH)
        cens = frame.loc[frame["event"] == 0, "time_months"]
        if (frame["event"] == 0).any():
            rev = fit_km(frame["time_days"], 1 - frame["event"], label="reverse")
            fu_med = rev.quantile_days(0.5) / DAYS_PER_MONTH
        else:
            fu_med = np.nan
        q = quartiles(frame["time_months"])
        m = med / DAYS_PER_MONTH
        ci = (lo / DAYS_PER_MONTH, hi / DAYS_PER_MONTH)
        notes = []
        if name == "followup" and label == "overall":
            notes.append("the paper's analysis set; IC-10: compare KM quartiles with desc_* "
                         "(Table 3 descriptive)")
        if name == "sensitivity":
            notes.append("IC-11: all included patients, explant censored at explant_date, "
                         "lost patients censored at last contact")
        if np.isinf(med):
            notes.append("median not reached")
        rows.append(dict(
            analysis_set=name, stratum=label, n=fit.n, n_events=fit.n_events,
            median_months=m, median_ci_low=ci[0], median_ci_high=ci[1],
            t_s075_months=t75 / DAYS_PER_MONTH, t_s025_months=t25 / DAYS_PER_MONTH,
            variable=var, level=lv, n_censored=fit.n - fit.n_events,
            surv_6m=s6[0], surv_6m_ci_low=s6[1], surv_6m_ci_high=s6[2],
            surv_12m=s12[0], surv_12m_ci_low=s12[1], surv_12m_ci_high=s12[2],
            median_followup_months=fu_med,
            censored_min_months=float(cens.min()) if len(cens) else np.nan,
            censored_max_months=float(cens.max()) if len(cens) else np.nan,
            desc_median_months=q.median, desc_q1_months=q.q1, desc_q3_months=q.q3,
            desc_median_months_type7=q.median_type7, desc_q1_months_type7=q.q1_type7,
            desc_q3_months_type7=q.q3_type7,
            logrank_p=lr_p.get((name, var), np.nan) if var else np.nan,
            display=f"{_fmt_months(m, 0)} ({_fmt_months(t75 / DAYS_PER_MONTH, 0)}\u2013"
                    f"{_fmt_months(t25 / DAYS_PER_MONTH, 0)})",
            median_ci_display=f"{_fmt_months(m, 1)} ({_fmt_months(ci[0], 1)}\u2013{_fmt_months(ci[1], 1)})",
            note="; ".join(notes),
        ))
    return pd.DataFrame(rows, columns=list(SURVIVAL_SUMMARY_COLUMNS))
