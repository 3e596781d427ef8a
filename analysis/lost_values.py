"""Which statistics lost values to data-quality set-asides, and how many.

The pipeline sets aside (NULLs) a cohort value that a blocking rule found wrong, or a
whole patient; the set-aside rows say which patient, which cohort column (``variable``,
or ``patient``) and which check. Every statistic is computed on the remaining values, so
its n / denominator falls: :func:`annotate` compares each statistic with the same one
computed on the cohort as built (before the set-asides), adds the difference
(``n_set_aside``, exact whatever the statistic's population) and the checks that set aside
its source values (``set_aside_checks``), for the footnotes of the study report and the
reproduction mart.

Pure: frames in, frames out; the inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

__all__ = [
    "SET_ASIDE_COLUMNS",
    "annotate",
    "annotate_cox",
    "annotate_pain",
    "annotate_summary",
    "annotate_table",
    "lost_note",
    "sources",
]

#: Columns of the set-aside frame this module reads (``marts.cohort_set_aside``).
SET_ASIDE_COLUMNS: tuple[str, ...] = ("patient_key", "variable", "check_id", "value", "followup_set")

PATIENT = "patient"
OS = ("os_days", "os_months", "os_event")

#: Statistic variable -> the cohort columns it is computed from (a variable not listed is
#: a cohort column itself).
DERIVED: dict[str, tuple[str, ...]] = {
    "underweight": ("bmi",),
    "adl_lt60": ("adl_barthel",),
    "prior_any_antineoplastic": ("prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy"),
    "ome_gt200": ("baseline_ome_mg_per_day",),
    "ome_gt500": ("baseline_ome_mg_per_day",),
    "itt_any": ("itt_count",),
    "implant_year": ("implant_date",),
    "cancer_group": ("cancer_site",),
    "metastasis": ("metastasis_any",),
    "gi_cancer": ("cancer_site",),
    "age_per_10y": ("age_years",),
}

#: Survival sets: the time and event, and for the sensitivity set the explant date.
SURVIVAL_SOURCES: dict[str, tuple[str, ...]] = {
    "followup": OS,
    "sensitivity": (*OS, "explant_date"),
}


def sources(variable: str) -> tuple[str, ...]:
    """The cohort columns a statistic of ``variable`` is computed from."""
    return DERIVED.get(variable, (variable,))


def _frame(set_aside: pd.DataFrame | None) -> pd.DataFrame:
    if set_aside is None or set_aside.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SET_ASIDE_COLUMNS})
    missing = [c for c in SET_ASIDE_COLUMNS if c not in set_aside.columns]
    if missing:
        raise ValueError("lost_values: the set-aside frame lacks " + ", ".join(missing))
    return set_aside


def count(set_aside: pd.DataFrame | None, columns: Iterable[str], followup_only: bool) -> tuple[int, str]:
    """(patients, check ids) of the population whose value of any of ``columns`` was set
    aside (a value that was missing anyway loses nothing); a patient set aside as a whole
    counts for every statistic. ``followup_only``: the population is the follow-up set (so
    a follow-up status set aside counts too)."""
    sa = _frame(set_aside)
    wanted = set(columns) | {PATIENT}
    if followup_only:
        wanted.add("followup_status")
    hit = sa.loc[sa["variable"].isin(wanted) & ((sa["variable"] == PATIENT) | sa["value"].notna())]
    if followup_only:
        hit = hit.loc[hit["followup_set"].fillna(False).astype(bool)]
    if hit.empty:
        return 0, ""
    return int(hit["patient_key"].nunique()), ", ".join(sorted(hit["check_id"].astype(str).unique()))


def _key(row: pd.Series, keys: tuple[str, ...]) -> tuple:
    return tuple(None if (isinstance(row.get(k), float) and row.get(k) != row.get(k)) else row.get(k)
                 for k in keys)


def annotate(frame: pd.DataFrame, built: pd.DataFrame | None, set_aside: pd.DataFrame | None,
             keys: tuple[str, ...], counted: Callable[[pd.Series], float],
             row_sources: Callable[[pd.Series], tuple[tuple[str, ...], bool]]) -> pd.DataFrame:
    """``frame`` (a mart computed on the released cohort) with ``n_set_aside``: how many
    fewer patients each statistic counts than the same statistic computed on the cohort as
    built (``built``, the same mart before the set-asides; rows matched on ``keys``), and
    ``set_aside_checks``: the checks that set aside its source values (``row_sources``
    gives a row's source columns and whether its population is the follow-up set).
    Without ``built`` (e.g. survival, which cannot be estimated on impossible times) the
    number is that of the population's patients whose source values were set aside."""
    out = frame.copy()
    before = None if built is None else {_key(r, keys): counted(r) for _, r in built.iterrows()}
    lost, checks = [], []
    for _, row in out.iterrows():
        by_source, found = count(set_aside, *row_sources(row))
        if before is None:  # nothing to compare with: the patients whose source values were set aside
            n = by_source
        else:
            was, now = before.get(_key(row, keys)), counted(row)
            n = int(was - now) if was is not None and was == was and now == now and was > now else 0
        lost.append(n)
        checks.append(found if n else "")
    out["n_set_aside"] = pd.Series(lost, index=out.index, dtype="int64")
    out["set_aside_checks"] = pd.Series(checks, index=out.index, dtype=object)
    return out


def _table_count(r: pd.Series) -> float:
    value = r["denominator"] if r["statistic"] == "n_pct" else r["n"]
    return float(value) if value is not None and value == value else float("nan")


def _n(r: pd.Series) -> float:
    return float(r["n"]) if r["n"] is not None and r["n"] == r["n"] else float("nan")


def annotate_table(frame: pd.DataFrame, built: pd.DataFrame | None, set_aside: pd.DataFrame | None) -> pd.DataFrame:
    """Tables 1-3 (the n of a proportion is its denominator): rows of a '(followed
    patients)' section are on the follow-up set."""
    return annotate(frame, built, set_aside, ("section", "variable", "level", "statistic"), _table_count,
                    lambda r: (sources(str(r["variable"])), "followed patients" in str(r.get("section", ""))))


def annotate_pain(frame: pd.DataFrame, built: pd.DataFrame | None, set_aside: pd.DataFrame | None) -> pd.DataFrame:
    """The paired NRS tests: baseline and follow-up NRS of the follow-up set."""
    return annotate(frame, built, set_aside, ("test",), _n, lambda r: (("baseline_nrs", "followup_nrs"), True))


def annotate_summary(frame: pd.DataFrame, built: pd.DataFrame | None,
                     set_aside: pd.DataFrame | None) -> pd.DataFrame:
    """Kaplan-Meier summaries: survival time and event (+ the stratum's variable)."""
    def row_sources(r: pd.Series) -> tuple[tuple[str, ...], bool]:
        cols = SURVIVAL_SOURCES.get(str(r["analysis_set"]), OS)
        stratum = str(r.get("stratum", "overall"))
        if stratum != "overall":
            cols = (*cols, *sources(stratum.split("=", 1)[0]))
        return cols, str(r["analysis_set"]) == "followup"
    return annotate(frame, built, set_aside, ("analysis_set", "stratum"), _n, row_sources)


def annotate_cox(frame: pd.DataFrame, built: pd.DataFrame | None, set_aside: pd.DataFrame | None) -> pd.DataFrame:
    """Cox models: the survival columns and every covariate of the model (one n per model)."""
    terms = {s: tuple(c for t in frame.loc[frame["analysis_set"] == s, "term"] for c in sources(str(t)))
             for s in frame["analysis_set"].unique()} if not frame.empty else {}
    return annotate(frame, built, set_aside, ("analysis_set", "term"), _n, lambda r: (
        (*SURVIVAL_SOURCES.get(str(r["analysis_set"]), OS), *terms.get(r["analysis_set"], ())),
        str(r["analysis_set"]) == "followup"))


def lost_note(n: int, checks: str) -> str:
    """The footnote of a statistic that lost values ('' when none)."""
    if not n:
        return ""
    who = "1 patient's value" if n == 1 else f"{n} patients' values"
    return f"{who} set aside ({checks})"
