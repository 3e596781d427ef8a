"""Exploratory Cox proportional-hazards model of overall survival (not in the paper).

With 56 deaths in the follow-up set the model is kept to five terms (about ten
events per parameter):

=================  ====================================================
term               definition
=================  ====================================================
``adl_lt60``       Barthel ADL < 60 (1/0)
``age_per_10y``    age in years / 10
``metastasis``     any distant metastasis (1/0)
``gi_cancer``      colorectal, pancreas, liver, stomach or oesophagus (1/0)
``ome_gt200``      baseline OME > 200 mg/d (1/0; non-users 0)
=================  ====================================================

Fitted with :class:`lifelines.CoxPHFitter` (Efron ties, no penalty), checked
against ``statsmodels`` ``PHReg(ties="efron")`` in the tests. Proportional
hazards are checked with the scaled-Schoenfeld-residual test
(:func:`lifelines.statistics.proportional_hazard_test`) for two time transforms.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ApproximationWarning
from lifelines.statistics import proportional_hazard_test

from .formatting import as_bool, as_numeric, fmt_number, fmt_p, require_columns
from .survival import survival_sets
from .tables import cancer_group

__all__ = ["COX_TERMS", "CoxResult", "cox_design", "cox_model"]

#: Default model terms and their source columns.
COX_TERMS: dict[str, tuple[str, ...]] = {
    "adl_lt60": ("adl_barthel",),
    "age_per_10y": ("age_years",),
    "metastasis": ("metastasis_any",),
    "gi_cancer": ("cancer_site",),
    "ome_gt200": ("baseline_ome_mg_per_day",),
    # optional alternatives
    "met_bone": ("met_bone",),
    "adl_per_10": ("adl_barthel",),
    "underweight": ("bmi",),
    "log2_ome_plus1": ("baseline_ome_mg_per_day",),
    "baseline_nrs": ("baseline_nrs",),
}
DEFAULT_TERMS: tuple[str, ...] = ("adl_lt60", "age_per_10y", "metastasis", "gi_cancer", "ome_gt200")

_LABELS = {
    "adl_lt60": "ADL < 60",
    "age_per_10y": "Age (per 10 years)",
    "metastasis": "Distant metastasis",
    "gi_cancer": "GI cancer",
    "ome_gt200": "Baseline OME > 200 mg/d",
    "met_bone": "Bone metastasis",
    "adl_per_10": "ADL (per 10 points)",
    "underweight": "BMI < 18.5",
    "log2_ome_plus1": "log2(OME + 1)",
    "baseline_nrs": "Baseline NRS",
}


@dataclass(frozen=True)
class CoxResult:
    """Result of :func:`cox_model`.

    Attributes
    ----------
    coefficients : pandas.DataFrame
        One row per term: ``term, label, coef, se, hr, hr_ci_low, hr_ci_high, z,
        p_value, p_display, display`` (display = "HR (low–high)", 2 dp).
    ph_test : pandas.DataFrame
        Schoenfeld-residual test: ``term, transform, test_statistic, p_value,
        p_display, violated`` (p < 0.05), one row per term and time transform.
    concordance : float
        Harrell's C on the fitted data.
    n, n_events : int
    log_likelihood : float
    analysis_set : str
    terms : tuple of str
    design : pandas.DataFrame
        The fitted design (``time_months``, ``event`` and the terms).
    model : lifelines.CoxPHFitter
    """

    coefficients: pd.DataFrame
    ph_test: pd.DataFrame
    concordance: float
    n: int
    n_events: int
    log_likelihood: float
    analysis_set: str
    terms: tuple[str, ...]
    design: pd.DataFrame
    model: CoxPHFitter


def cox_design(df: pd.DataFrame, terms: Sequence[str] = DEFAULT_TERMS,
               analysis_set: str = "followup") -> pd.DataFrame:
    """Design matrix for the Cox model: ``time_months``, ``event`` and the terms.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame (see :func:`analysis.survival.survival_sets`) plus the
        source columns of ``terms``.
    terms : sequence of str
        Keys of :data:`COX_TERMS`.
    analysis_set : {"followup", "sensitivity"}

    Returns
    -------
    pandas.DataFrame
        New frame; patients with a missing covariate are dropped.

    Raises
    ------
    ValueError
        On an unknown term or a missing source column.
    """
    where = "cox_model"
    unknown = [t for t in terms if t not in COX_TERMS]
    if unknown:
        raise ValueError(f"{where}: unknown term(s) {unknown}; known: {sorted(COX_TERMS)}")
    if not terms:
        raise ValueError(f"{where}: at least one term is required")
    needed = sorted({c for t in terms for c in COX_TERMS[t]})
    require_columns(df, needed, where)
    sets = survival_sets(df, strata=())
    frame = sets.get(analysis_set)
    X = pd.DataFrame({"time_months": frame["time_months"].astype(float),
                      "event": frame["event"].astype(int)}, index=frame.index)
    for t in terms:
        if t == "adl_lt60":
            a = as_numeric(frame["adl_barthel"], where)
            X[t] = (a < 60).astype(float).where(a.notna())
        elif t == "adl_per_10":
            X[t] = as_numeric(frame["adl_barthel"], where) / 10.0
        elif t == "age_per_10y":
            X[t] = as_numeric(frame["age_years"], where) / 10.0
        elif t == "metastasis":
            X[t] = as_bool(frame["metastasis_any"], where).astype("Float64").astype(float)
        elif t == "met_bone":
            X[t] = as_bool(frame["met_bone"], where).astype("Float64").astype(float)
        elif t == "gi_cancer":
            g = cancer_group(frame["cancer_site"])
            X[t] = (g == "GI").astype(float).where(g.notna())
        elif t == "ome_gt200":
            o = as_numeric(frame["baseline_ome_mg_per_day"], where)
            X[t] = (o > 200).astype(float).where(o.notna())
        elif t == "log2_ome_plus1":
            X[t] = np.log2(as_numeric(frame["baseline_ome_mg_per_day"], where) + 1.0)
        elif t == "underweight":
            b = as_numeric(frame["bmi"], where)
            X[t] = (b < 18.5).astype(float).where(b.notna())
        elif t == "baseline_nrs":
            X[t] = as_numeric(frame["baseline_nrs"], where)
    return X.dropna().reset_index(drop=True)


def cox_model(df: pd.DataFrame, terms: Sequence[str] = DEFAULT_TERMS,
              analysis_set: str = "followup", alpha: float = 0.05) -> CoxResult:
    """Fit the exploratory Cox model (Efron ties) and test proportional hazards.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with the survival columns and the source columns of the terms
        (default: ``adl_barthel``, ``age_years``, ``metastasis_any``,
        ``cancer_site``, ``baseline_ome_mg_per_day``).
    terms : sequence of str, default :data:`DEFAULT_TERMS`
        At most five are advised for 56 events.
    analysis_set : {"followup", "sensitivity"}, default "followup"
    alpha : float, default 0.05
        1 - confidence level of the hazard-ratio intervals.

    Returns
    -------
    CoxResult

    Raises
    ------
    ValueError
        On a missing column, an unknown term, no events, a constant covariate,
        or more terms than events / 5.
    """
    where = "cox_model"
    X = cox_design(df, terms, analysis_set)
    n_events = int(X["event"].sum())
    if n_events == 0:
        raise ValueError(f"{where}: no events in the analysis set")
    if len(terms) > max(1, n_events // 5):
        raise ValueError(f"{where}: {len(terms)} terms for {n_events} events is over-parameterised")
    const = [t for t in terms if X[t].nunique() < 2]
    if const:
        raise ValueError(f"{where}: term(s) {const} are constant in the analysis set")
    cph = CoxPHFitter(alpha=alpha, penalizer=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximationWarning)
        cph.fit(X, duration_col="time_months", event_col="event")
    s = cph.summary
    lo_col = [c for c in s.columns if c.startswith("exp(coef) lower")][0]
    hi_col = [c for c in s.columns if c.startswith("exp(coef) upper")][0]
    coef = pd.DataFrame({
        "term": list(terms),
        "label": [_LABELS[t] for t in terms],
        "coef": s.loc[list(terms), "coef"].to_numpy(float),
        "se": s.loc[list(terms), "se(coef)"].to_numpy(float),
        "hr": s.loc[list(terms), "exp(coef)"].to_numpy(float),
        "hr_ci_low": s.loc[list(terms), lo_col].to_numpy(float),
        "hr_ci_high": s.loc[list(terms), hi_col].to_numpy(float),
        "z": s.loc[list(terms), "z"].to_numpy(float),
        "p_value": s.loc[list(terms), "p"].to_numpy(float),
    })
    coef["p_display"] = coef["p_value"].map(fmt_p)
    coef["display"] = [f"{fmt_number(h, 2)} ({fmt_number(a, 2)}\u2013{fmt_number(b, 2)})"
                       for h, a, b in zip(coef["hr"], coef["hr_ci_low"], coef["hr_ci_high"], strict=True)]

    ph_rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximationWarning)
        for transform in ("rank", "km"):
            res = proportional_hazard_test(cph, X, time_transform=transform)
            summ = res.summary
            for t in terms:
                key = t if t in summ.index else (t,)
                p = float(summ.loc[key, "p"])
                ph_rows.append(dict(term=t, transform=transform,
                                    test_statistic=float(summ.loc[key, "test_statistic"]),
                                    p_value=p, p_display=fmt_p(p), violated=bool(p < 0.05)))
    ph = pd.DataFrame(ph_rows, columns=["term", "transform", "test_statistic", "p_value", "p_display",
                                        "violated"])
    return CoxResult(coefficients=coef, ph_test=ph, concordance=float(cph.concordance_index_),
                     n=int(len(X)), n_events=n_events, log_likelihood=float(cph.log_likelihood_),
                     analysis_set=analysis_set, terms=tuple(terms), design=X, model=cph)
