"""The reproduction report: every statistic the paper prints next to ours.

One row per printed statistic (and per alternative denominator where the paper's
is ambiguous), in the order of :data:`analysis.paper.PAPER`. Rows concerned by an
inconsistency carry its id in ``note``; a printed value we cannot reproduce is
shown as ``matches = False`` with the reason, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import paper as _paper
from .formatting import fmt_median_iqr, fmt_number, fmt_p
from .lost_values import lost_note

__all__ = ["REPRODUCTION_COLUMNS", "reproduction"]

REPRODUCTION_COLUMNS: tuple[str, ...] = (
    "source", "statistic", "paper_value", "pipeline_value", "matches", "note", "paper_key", "ic_ids",
    "set_aside",
)

_TABLE_REQUIRED = ("paper_key", "display", "paper_display", "matches_paper", "note", "level", "n",
                   "denominator", "statistic", "value", "q1", "q3", "min", "max")
_PAIN_REQUIRED = ("test", "p_value")
_SUMMARY_REQUIRED = ("analysis_set", "stratum", "median_months", "t_s075_months", "t_s025_months")


def _check(frame: object, cols: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"reproduction: {what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"reproduction: {what} is missing required column(s) "
                         + ", ".join(repr(c) for c in missing))
    return frame


def _note(pv: _paper.PaperValue, matches: bool, extra: str = "") -> str:
    parts = []
    if pv.ic:
        parts.append(f"{'/'.join(pv.ic)} {'flagged, reproduced' if matches else 'flagged, not reproduced (paper-inconsistent or ambiguous)'}")
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def _qualifier(row: pd.Series, pv: _paper.PaperValue) -> str:
    bits = []
    lv = str(row["level"]) if row["level"] == row["level"] else ""
    if row["paper_key"] in ("ome", "idds_init_morphine") and lv:
        bits.append(lv)
    if row["denominator"] is not pd.NA and row["denominator"] == row["denominator"]:
        d = int(row["denominator"])
        if row["statistic"] == "n_pct":
            bits.append(f"of {d}")
        else:
            bits.append(f"n = {int(row['n'])}")
    return f"{pv.label} [{', '.join(bits)}]" if bits else pv.label


def reproduction(
    tables: Mapping[str, pd.DataFrame] | Sequence[pd.DataFrame],
    pain: pd.DataFrame,
    summary: pd.DataFrame,
) -> pd.DataFrame:
    """Compare every printed statistic with the pipeline's value.

    Parameters
    ----------
    tables : mapping or sequence of pandas.DataFrame
        The outputs of :func:`analysis.tables.table1`, ``table2`` and ``table3``
        (a ``{"table1": ..., ...}`` mapping or a list).
    pain : pandas.DataFrame
        Output of :func:`analysis.pain.pain_response`.
    summary : pandas.DataFrame
        Output of :func:`analysis.survival.km_summary` (the follow-up overall row
        is used).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`REPRODUCTION_COLUMNS`: ``source`` (where the paper prints
        it), ``statistic``, ``paper_value`` (as printed), ``pipeline_value`` (our
        display), ``matches`` (bool), ``note`` (IC ids and remarks), plus
        ``paper_key`` and ``ic_ids``.

    Raises
    ------
    ValueError
        If an input is not a DataFrame or lacks a required column.
    """
    frames = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    if not frames:
        raise ValueError("reproduction: no tables given")
    for i, f in enumerate(frames):
        _check(f, _TABLE_REQUIRED, f"table #{i + 1}")
    _check(pain, _PAIN_REQUIRED, "pain")
    _check(summary, _SUMMARY_REQUIRED, "summary")
    rows_all = pd.concat(frames, ignore_index=True)
    by_key: dict[str, list[pd.Series]] = {}
    for _, r in rows_all.iterrows():
        if isinstance(r["paper_key"], str) and r["paper_key"]:
            by_key.setdefault(r["paper_key"], []).append(r)

    def table_row(name: str) -> pd.Series | None:
        cands = by_key.get(name, [])
        return cands[0] if cands else None

    out: list[dict] = []

    def add(pv: _paper.PaperValue, statistic: str, pipeline: str, matches: bool, extra: str = "",
            source: pd.Series | None = None) -> None:
        out.append(dict(source=pv.source, statistic=statistic, paper_value=pv.display,
                        pipeline_value=pipeline, matches=bool(matches), note=_note(pv, matches, extra),
                        paper_key=pv.key, ic_ids=",".join(pv.ic), set_aside=_lost(source)))

    fu_overall = summary.loc[(summary["analysis_set"] == "followup") & (summary["stratum"] == "overall")]
    t_row = pain.loc[pain["test"] == "paired_t"]
    t3_status = by_key.get("followed", [])

    for key, pv in _paper.PAPER.items():
        if key in by_key:
            for r in by_key[key]:
                add(pv, _qualifier(r, pv), str(r["display"]), bool(r["matches_paper"]),
                    extra=str(r["note"]) if not pv.ic else _strip_ic_prefix(str(r["note"])), source=r)
            continue
        if key in ("bmi_min", "bmi_max"):
            r = table_row("bmi")
            if r is None:
                add(pv, pv.label, "", False, "not computed (Table 1 missing)")
                continue
            v = float(r["min"] if key == "bmi_min" else r["max"])
            add(pv, pv.label, fmt_number(v, 1), _paper.compare(key, value=v), source=r)
        elif key == "ome_abstract":
            users = [r for r in by_key.get("ome", []) if str(r["level"]) == "opioid users"]
            if not users:
                add(pv, pv.label, "", False, "not computed (Table 1 missing)")
                continue
            r = users[0]
            ok = _paper.compare(key, median=r["value"], q1=r["q1"], q3=r["q3"])
            add(pv, f"{pv.label} [opioid users, n = {int(r['n'])}]",
                fmt_median_iqr(r["value"], r["q1"], r["q3"], 0), ok,
                f"upper quartile {fmt_number(r['q3'], 1)} before rounding", source=r)
        elif key == "cohort_n":
            if not t3_status:
                add(pv, pv.label, "", False, "not computed (Table 3 missing)")
                continue
            n = int(t3_status[0]["denominator"])
            add(pv, pv.label, str(n), _paper.compare(key, n=n), source=t3_status[0])
        elif key == "nrs_p":
            if t_row.empty:
                add(pv, pv.label, "", False, "paired t-test missing")
                continue
            p = float(t_row["p_value"].iloc[0])
            stat = t_row["statistic"].iloc[0] if "statistic" in t_row.columns else np.nan
            add(pv, pv.label, fmt_p(p), _paper.compare(key, p_value=p),
                f"t = {fmt_number(stat, 2)}, p = {p:.2e}" if stat == stat else "", source=t_row.iloc[0])
        elif key == "os_km":
            if fu_overall.empty:
                add(pv, pv.label, "", False, "follow-up overall curve missing")
                continue
            r = fu_overall.iloc[0]
            med, t75, t25 = (float(r["median_months"]), float(r["t_s075_months"]),
                             float(r["t_s025_months"]))
            ok = _paper.compare(key, median=med, q1=t75, q3=t25) if np.isfinite([med, t75, t25]).all() \
                else False
            extra = (f"Kaplan-Meier median {fmt_number(med, 2)}, t(S=0.75) {fmt_number(t75, 2)}, "
                     f"t(S=0.25) {fmt_number(t25, 2)} months")
            if "median_ci_low" in r.index:
                extra += f"; median 95 % CI {fmt_number(r['median_ci_low'], 2)}\u2013" \
                         f"{fmt_number(r['median_ci_high'], 2)}"
            disp = fmt_median_iqr(med, t75, t25, 0) if np.isfinite([med, t75, t25]).all() else "NR"
            add(pv, pv.label + " [Kaplan-Meier, follow-up set]", disp, ok, extra, source=r)
        else:
            add(pv, pv.label, "", False, "not computed by the pipeline")
    return pd.DataFrame(out, columns=list(REPRODUCTION_COLUMNS)).astype({"matches": bool})


def _lost(row: pd.Series | None) -> str:
    """The statistic's set-aside footnote, from its source row (tables, pain, survival)."""
    if row is None or "n_set_aside" not in row.index:
        return ""
    n = row["n_set_aside"]
    return lost_note(int(n), str(row["set_aside_checks"])) if n == n and n else ""


def _strip_ic_prefix(note: str) -> str:
    """Drop the table's own 'IC-xx status: paper ..., recomputed ...' lead-in (it is rebuilt)."""
    parts = [p for p in note.split("; ") if not p.startswith("IC-")]
    return "; ".join(parts)
