"""Outcome marts: read the cohort mart, call the pure analysis functions, write the results.

``compute_outcomes`` is pure (cohort frame in, one frame per mart out);
``write_outcome_marts`` reads ``marts.cohort_idds`` and replaces the outcome marts
in one transaction; ``save_figures`` writes the study figures as PNG files.

Graceful degradation: every mart is computed on its own. When the cohort frame lacks
the columns an analysis needs (an older, thinner cohort mart) or holds too few
patients or events, that mart is written *empty with its columns* (saved analyst
queries keep working and return no rows) and ``marts.outcome_status`` says why. A
failing analysis never stops the run.

Mart conventions: ``inf`` ("not reached" survival quantiles) and ``NaN`` are written
as NULL; column types are fixed here, not inferred from pandas, so that an empty mart
has the same schema as a full one. No outcome mart holds a patient-level row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analysis.cox import cox_model
from analysis.figures import (
    forest_figure,
    implants_figure,
    km_by_stratum_figure,
    km_figure,
    nrs_figure,
)
from analysis.lost_values import annotate_cox, annotate_pain, annotate_summary, annotate_table
from analysis.pain import PAIN_RESPONSE_COLUMNS, pain_response
from analysis.reproduction import REPRODUCTION_COLUMNS, reproduction
from analysis.survival import (
    DEFAULT_STRATA,
    SURVIVAL_KM_COLUMNS,
    SURVIVAL_SUMMARY_COLUMNS,
    km_curves,
    km_summary,
    logrank_tests,
    strata_frame,
)
from analysis.tables import TABLE_COLUMNS, table1, table2, table3
from analysis.trends import IMPLANTS_BY_YEAR_COLUMNS, implants_by_year

__all__ = [
    "COHORT_TABLE",
    "MART_COLUMNS",
    "OUTCOME_MARTS",
    "STATUS_MART",
    "SURVIVAL_STRATA",
    "available_strata",
    "compute_outcomes",
    "compute_outcomes_with_status",
    "save_figures",
    "write_outcome_marts",
]

log = logging.getLogger(__name__)

COHORT_TABLE = "marts.cohort_idds"
SET_ASIDE_TABLE = "marts.cohort_set_aside"
BUILT_TABLE = "intermediate.cohort_as_built"
STATUS_MART = "outcome_status"

#: Stratification variables of the survival marts (exploratory; those whose source
#: columns are present are used).
SURVIVAL_STRATA: tuple[str, ...] = (*DEFAULT_STRATA, "itt_any")

#: Strata drawn as Kaplan-Meier figures (when available).
FIGURE_STRATA: tuple[str, ...] = ("adl_lt60", "metastasis_any", "cancer_group", "ome_gt200")

LOGRANK_COLUMNS: tuple[str, ...] = (
    "analysis_set", "variable", "n_groups", "n", "n_events", "test_statistic", "degrees_freedom",
    "p_value", "p_display",
)
COX_MODEL_COLUMNS: tuple[str, ...] = (
    "analysis_set", "term", "label", "coef", "se", "hr", "hr_ci_low", "hr_ci_high", "z", "p_value",
    "p_display", "display", "n", "n_events", "concordance", "log_likelihood", "ties",
)
COX_PH_COLUMNS: tuple[str, ...] = (
    "analysis_set", "term", "transform", "test_statistic", "p_value", "p_display", "violated",
)
STATUS_COLUMNS: tuple[str, ...] = ("mart", "status", "n_rows", "reason")

#: Per statistic: how many patients' values it lost to set-asides, and by which checks.
LOST_COLUMNS: tuple[str, ...] = ("n_set_aside", "set_aside_checks")

#: Every outcome mart and its columns, in order (required columns of the analyst
#: interface first).
MART_COLUMNS: dict[str, tuple[str, ...]] = {
    "table1": (*TABLE_COLUMNS, *LOST_COLUMNS),
    "table2": (*TABLE_COLUMNS, *LOST_COLUMNS),
    "table3": (*TABLE_COLUMNS, *LOST_COLUMNS),
    "pain_response": (*PAIN_RESPONSE_COLUMNS, *LOST_COLUMNS),
    "survival_km": SURVIVAL_KM_COLUMNS,
    "survival_summary": (*SURVIVAL_SUMMARY_COLUMNS, *LOST_COLUMNS),
    "survival_logrank": LOGRANK_COLUMNS,
    "cox_model": (*COX_MODEL_COLUMNS, *LOST_COLUMNS),
    "cox_ph_test": COX_PH_COLUMNS,
    "implants_by_year": IMPLANTS_BY_YEAR_COLUMNS,
    "reproduction": REPRODUCTION_COLUMNS,
}
OUTCOME_MARTS: tuple[str, ...] = tuple(MART_COLUMNS)

_VARCHAR = "varchar"
_DOUBLE = "double"
_BIGINT = "bigint"
_BOOLEAN = "boolean"

#: Column types by name (the same name means the same thing in every mart) ...
_TYPES: dict[str, str] = {
    "row_order": _BIGINT, "n": _BIGINT, "denominator": _BIGINT, "n_at_risk": _BIGINT,
    "n_events": _BIGINT, "n_censored": _BIGINT, "n_groups": _BIGINT, "n_rows": _BIGINT,
    "n_zero_differences": _BIGINT, "n_improved": _BIGINT, "n_reduction_ge30": _BIGINT,
    "n_reduction_ge50": _BIGINT, "implant_year": _BIGINT, "change_from_previous": _BIGINT,
    "matches_paper": _BOOLEAN, "matches": _BOOLEAN, "violated": _BOOLEAN, "n_set_aside": _BIGINT,
}
_DOUBLE_NAMES = {
    "value", "sd", "q1", "q3", "value_type7", "q1_type7", "q3_type7", "min", "max",
    "before_mean", "before_sd", "after_mean", "after_sd", "mean_difference", "ci_low", "ci_high",
    "p_value", "df", "effect_size", "z", "pct_improved", "pct_reduction_ge30", "pct_reduction_ge50",
    "time_months", "time_days", "survival", "median_months", "median_ci_low", "median_ci_high",
    "t_s075_months", "t_s025_months", "surv_6m", "surv_6m_ci_low", "surv_6m_ci_high", "surv_12m",
    "surv_12m_ci_low", "surv_12m_ci_high", "median_followup_months", "censored_min_months",
    "censored_max_months", "desc_median_months", "desc_q1_months", "desc_q3_months",
    "desc_median_months_type7", "desc_q1_months_type7", "desc_q3_months_type7", "logrank_p",
    "test_statistic", "degrees_freedom", "coef", "se", "hr", "hr_ci_low", "hr_ci_high",
    "concordance", "log_likelihood", "percent",
}
_TYPES.update({c: _DOUBLE for c in _DOUBLE_NAMES})
#: ... except where a mart uses a name differently.
_OVERRIDES: dict[str, dict[str, str]] = {
    "pain_response": {"statistic": _DOUBLE},
}


def column_type(mart: str, column: str) -> str:
    """DuckDB type of ``column`` in ``mart`` (text unless known otherwise)."""
    return _OVERRIDES.get(mart, {}).get(column) or _TYPES.get(column, _VARCHAR)


# ------------------------------------------------------------------------------------------
# pure computation
# ------------------------------------------------------------------------------------------


def available_strata(cohort: pd.DataFrame, strata: tuple[str, ...] = SURVIVAL_STRATA) -> list[str]:
    """The stratification variables whose source columns ``cohort`` holds."""
    out = []
    for s in strata:
        try:
            strata_frame(cohort, [s])
        except (ValueError, KeyError, TypeError):
            continue
        out.append(s)
    return out


def _clean(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Mart columns first (extras after), ``inf`` -> NaN, a fresh RangeIndex."""
    out = frame.copy()
    ordered = [c for c in columns if c in out.columns] + [c for c in out.columns if c not in columns]
    out = out[ordered].reset_index(drop=True)
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].replace([np.inf, -np.inf], np.nan)
        elif out[c].dtype == object:
            out[c] = out[c].map(lambda v: np.nan if isinstance(v, float) and math.isinf(v) else v)
    return out


def empty_mart(name: str) -> pd.DataFrame:
    """A mart with its columns and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in MART_COLUMNS[name]})


def _cox_frames(cohort: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    coefs, phs, errors = [], [], []
    for analysis_set in ("followup", "sensitivity"):
        try:
            res = cox_model(cohort, analysis_set=analysis_set)
        except Exception as exc:  # noqa: BLE001 - one failed set must not hide the other
            errors.append(f"{analysis_set}: {exc}")
            continue
        c = res.coefficients.copy()
        c.insert(0, "analysis_set", analysis_set)
        c["n"] = res.n
        c["n_events"] = res.n_events
        c["concordance"] = res.concordance
        c["log_likelihood"] = res.log_likelihood
        c["ties"] = "efron"
        coefs.append(c)
        p = res.ph_test.copy()
        p.insert(0, "analysis_set", analysis_set)
        phs.append(p)
    if not coefs:
        reasons = list(dict.fromkeys(e.split(": ", 1)[1] for e in errors))
        raise ValueError("; ".join(reasons) if len(reasons) == 1 else "; ".join(errors))
    return pd.concat(coefs, ignore_index=True), pd.concat(phs, ignore_index=True)


def compute_outcomes_with_status(
    cohort: pd.DataFrame,
    set_aside: pd.DataFrame | None = None,
    built: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Every outcome mart that can be computed, and why the others could not.

    Parameters
    ----------
    cohort : pandas.DataFrame
        The cohort frame (one row per included patient; columns of
        ``docs/cohort_variables.md``). Never modified.
    set_aside : pandas.DataFrame, optional
        ``marts.cohort_set_aside`` (values the data-quality rules set aside).
    built : pandas.DataFrame, optional
        The cohort as built, before the set-asides. With both, tables 1-3, pain response,
        survival summaries and Cox models get ``n_set_aside`` (how many fewer patients
        each statistic counts than on ``built``) and ``set_aside_checks`` (see
        :mod:`analysis.lost_values`).

    Returns
    -------
    (marts, skipped) : tuple of dict
        ``marts`` maps a mart name (see :data:`OUTCOME_MARTS`) to its frame;
        ``skipped`` maps each mart that could not be computed to a one-line reason.
    """
    if not isinstance(cohort, pd.DataFrame):
        raise TypeError(f"compute_outcomes: expected a pandas DataFrame, got {type(cohort).__name__}")
    marts: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], pd.DataFrame]) -> None:
        if cohort.empty:
            skipped[name] = "the cohort is empty"
            return
        try:
            marts[name] = _clean(fn(), MART_COLUMNS[name])
        except Exception as exc:  # noqa: BLE001 - degrade, never crash the run
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            skipped[name] = reason if len(reason) <= 400 else reason[:399] + "…"
            log.warning("Outcome mart %s skipped: %s", name, skipped[name])

    strata = tuple(available_strata(cohort)) if not cohort.empty else ()
    compare = built is not None and set_aside is not None and not set_aside.empty

    def before(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame | None:
        """The same mart on the cohort as built (None when nothing was set aside)."""
        if not compare:
            return None
        try:
            return fn(built)
        except Exception:  # noqa: BLE001 - then there is nothing to compare with
            return None

    for name, make in (("table1", table1), ("table2", table2), ("table3", table3)):
        attempt(name, lambda make=make: annotate_table(make(cohort), before(make), set_aside))
    attempt("pain_response", lambda: annotate_pain(pain_response(cohort), before(pain_response), set_aside))
    attempt("survival_km", lambda: km_curves(cohort, strata=strata))
    # survival and Cox count the patients whose survival or covariate values were set aside
    # (the cohort as built may hold impossible times, on which nothing can be estimated)
    attempt("survival_summary", lambda: annotate_summary(km_summary(cohort, strata=strata), None, set_aside))
    attempt("survival_logrank", lambda: logrank_tests(cohort, strata=strata))
    cox: dict[str, pd.DataFrame] = {}

    def cox_part(part: int) -> pd.DataFrame:
        if not cox:
            cox["model"], cox["ph"] = _cox_frames(cohort)
            cox["model"] = annotate_cox(cox["model"], None, set_aside)
        return cox["model" if part == 0 else "ph"]

    attempt("cox_model", lambda: cox_part(0))
    if "cox_model" in skipped:
        skipped["cox_ph_test"] = skipped["cox_model"]
    else:
        attempt("cox_ph_test", lambda: cox_part(1))
    attempt("implants_by_year", lambda: implants_by_year(cohort))
    if not cohort.empty:
        tables = {k: marts[k] for k in ("table1", "table2", "table3") if k in marts} \
            or {"table1": empty_mart("table1")}
        attempt("reproduction", lambda: reproduction(
            tables, marts.get("pain_response", empty_mart("pain_response")),
            marts.get("survival_summary", empty_mart("survival_summary"))))
    else:
        skipped["reproduction"] = "the cohort is empty"
    return {k: marts[k] for k in OUTCOME_MARTS if k in marts}, skipped


def compute_outcomes(cohort: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Outcome marts from the cohort frame (pure: frames in, frames out).

    Parameters
    ----------
    cohort : pandas.DataFrame
        One row per included patient (``marts.cohort_idds``). Never modified.

    Returns
    -------
    dict of str to pandas.DataFrame
        The marts of :data:`OUTCOME_MARTS` that could be computed (a mart whose
        inputs are missing is left out; see :func:`compute_outcomes_with_status`).
        Float columns hold NaN, never ``inf``.
    """
    return compute_outcomes_with_status(cohort)[0]


# ------------------------------------------------------------------------------------------
# warehouse I/O
# ------------------------------------------------------------------------------------------


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()", [schema, name]).fetchall()[0][0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _write(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> int:
    """Replace ``marts.<name>`` with ``frame`` under the mart's fixed column types."""
    columns = list(MART_COLUMNS.get(name, STATUS_COLUMNS if name == STATUS_MART else ()))
    columns += [c for c in frame.columns if c not in columns]
    if frame.empty:
        ddl = ", ".join(f"{_quote(c)} {column_type(name, c)}" for c in columns)
        con.execute(f"create or replace table marts.{_quote(name)} ({ddl})")
        return 0
    view = f"_outcome_{name}"
    data = frame.copy()
    for c in columns:
        if c not in data.columns:
            data[c] = None
    con.register(view, data[columns])
    try:
        exprs = []
        for c in columns:
            t = column_type(name, c)
            q = _quote(c)
            if t == _DOUBLE:
                exprs.append(f"case when isfinite(try_cast({q} as double)) then cast({q} as double) end as {q}")
            else:
                exprs.append(f"cast({q} as {t}) as {q}")
        con.execute(f"create or replace table marts.{_quote(name)} as select {', '.join(exprs)} "
                    f"from {_quote(view)}")
    finally:
        con.unregister(view)
    return int(len(frame))


def read_cohort(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """``marts.cohort_idds`` as a frame, or None when the table is missing."""
    if not _table_exists(con, COHORT_TABLE):
        return None
    return con.execute(f"select * from {COHORT_TABLE} order by all").df()  # a deterministic order


def read_built_cohort(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The cohort as built, before the set-asides (``intermediate.cohort_as_built``)."""
    if not _table_exists(con, BUILT_TABLE):
        return None
    return con.execute(f"select * from {BUILT_TABLE} order by all").df()


def read_set_aside(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """``marts.cohort_set_aside`` as a frame, or None when the table is missing."""
    if not _table_exists(con, SET_ASIDE_TABLE):
        return None
    return con.execute(f"select * from {SET_ASIDE_TABLE} order by all").df()


def write_outcome_marts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Compute and replace the outcome marts; return the row count of each mart written.

    Every mart of :data:`OUTCOME_MARTS` is written: with its rows, or empty with its
    columns when it could not be computed. ``marts.outcome_status`` (one row per
    outcome mart: ``mart, status, n_rows, reason``) records which and why. The
    marts are replaced in one transaction, so readers never see a mix of runs.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The working warehouse, where ``marts.cohort_idds`` exists.

    Returns
    -------
    dict of str to int
        Mart name (without schema) -> rows written, ``outcome_status`` included.
    """
    cohort = read_cohort(con)
    if cohort is None:
        marts, skipped = {}, {m: f"{COHORT_TABLE} is missing" for m in OUTCOME_MARTS}
    else:
        marts, skipped = compute_outcomes_with_status(cohort, read_set_aside(con), read_built_cohort(con))
    counts: dict[str, int] = {}
    status_rows = []
    con.execute("begin transaction")
    try:
        con.execute("create schema if not exists marts")
        for name in OUTCOME_MARTS:
            frame = marts.get(name, empty_mart(name))
            counts[name] = _write(con, name, frame)
            status_rows.append(dict(
                mart=name, status="written" if name in marts else "skipped",
                n_rows=counts[name], reason=skipped.get(name, "")))
        counts[STATUS_MART] = _write(con, STATUS_MART, pd.DataFrame(status_rows, columns=list(STATUS_COLUMNS)))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return counts


# ------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------

#: File name -> what the figure shows (also the report's caption).
FIGURES: Mapping[str, str] = {
    "km_followup.png": "Kaplan-Meier overall survival, follow-up set (the paper's Fig. 1), with "
                       "censor marks, 95 % log-log band and number at risk",
    "km_sensitivity.png": "Kaplan-Meier overall survival, all included patients (sensitivity set, "
                          "IC-11)",
    **{f"km_by_{s}.png": f"Kaplan-Meier overall survival by {s} (follow-up set, exploratory)"
       for s in FIGURE_STRATA},
    "cox_forest.png": "Cox model hazard ratios with 95 % CIs (follow-up set, Efron ties, exploratory)",
    "nrs_before_after.png": "NRS before and after IDDS in the follow-up set",
    "implants_per_year.png": "IDDS implants per calendar year",
}


def save_figures(cohort: pd.DataFrame, out_dir: Path, dpi: int = 130) -> list[Path]:
    """Write the study figures as PNG files into ``out_dir``; return the paths written.

    A figure whose inputs are missing from ``cohort`` is skipped (logged), never
    raised. File names are the keys of :data:`FIGURES`.

    Parameters
    ----------
    cohort : pandas.DataFrame
        The cohort frame. Never modified.
    out_dir : pathlib.Path
        Created if missing.
    dpi : int, default 130

    Returns
    -------
    list of pathlib.Path
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    makers: list[tuple[str, Callable[[], object]]] = [
        ("km_followup.png", lambda: km_figure(cohort, "followup")),
        ("km_sensitivity.png", lambda: km_figure(cohort, "sensitivity")),
    ]
    strata = set(available_strata(cohort, FIGURE_STRATA)) if not cohort.empty else set()
    for s in FIGURE_STRATA:
        if s in strata:
            makers.append((f"km_by_{s}.png", lambda s=s: km_by_stratum_figure(cohort, s)))
    makers += [
        ("cox_forest.png", lambda: forest_figure(cox_model(cohort))),
        ("nrs_before_after.png", lambda: nrs_figure(cohort)),
        ("implants_per_year.png", lambda: implants_figure(cohort)),
    ]
    written = []
    for name, make in makers:
        if cohort.empty:
            break
        try:
            fig = make()
            path = out_dir / name
            fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
        except Exception as exc:  # noqa: BLE001 - a missing figure must not stop the report
            log.warning("Figure %s skipped: %s", name, str(exc).splitlines()[0] if str(exc) else exc)
            continue
        written.append(path)
    return written
