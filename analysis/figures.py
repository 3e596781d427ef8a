"""Figures as :class:`matplotlib.figure.Figure` objects (Agg canvas; never saved here).

Figures are built on :class:`~matplotlib.figure.Figure` with an Agg canvas
attached, without pyplot, so no global figure state is touched and nothing is
displayed or written. The caller saves them (``fig.savefig(...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from .cox import CoxResult
from .formatting import fmt_p
from .pain import paired_nrs
from .survival import fit_km, logrank_tests, survival_sets
from .tables import DAYS_PER_MONTH
from .trends import implants_by_year

__all__ = [
    "AT_RISK_TIMES",
    "forest_figure",
    "implants_figure",
    "km_by_stratum_figure",
    "km_figure",
    "nrs_figure",
]

#: Months at which the number-at-risk table is printed.
AT_RISK_TIMES: tuple[float, ...] = (0, 3, 6, 12, 18, 24)

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _draw_km(ax, time_days: np.ndarray, event: np.ndarray, color: str, label: str,
             ci: bool = True) -> None:
    fit = fit_km(time_days, event, label=label)
    t = fit.times_days / DAYS_PER_MONTH
    ax.step(t, fit.survival, where="post", color=color, lw=1.8, label=label)
    if ci:
        ax.fill_between(t, fit.ci_low, fit.ci_high, step="post", color=color, alpha=0.15, lw=0)
    cens_t = np.asarray(time_days, float)[np.asarray(event) == 0]
    if cens_t.size:
        idx = np.searchsorted(fit.times_days, cens_t, side="right") - 1
        ax.plot(cens_t / DAYS_PER_MONTH, fit.survival[idx], ls="none", marker="|", ms=9, mew=1.4,
                color=color)


def _at_risk_table(ax, groups: Sequence[tuple[str, np.ndarray, str]], times: Sequence[float]) -> None:
    """Number-at-risk rows under the x-axis, in axes-fraction y coordinates."""
    xmin, xmax = ax.get_xlim()
    trans = ax.get_xaxis_transform()
    ax.text(xmin - 0.02 * (xmax - xmin), -0.16, "At risk", transform=trans, ha="right", va="top",
            fontsize=8, fontweight="bold")
    for r, (label, months, color) in enumerate(groups):
        y = -0.22 - 0.07 * r
        if len(groups) > 1:
            ax.text(xmin - 0.02 * (xmax - xmin), y, label, transform=trans, ha="right", va="top",
                    fontsize=8, color=color)
        for tm in times:
            if xmin <= tm <= xmax:
                ax.text(tm, y, str(int((months >= tm).sum())), transform=trans, ha="center", va="top",
                        fontsize=8, color=color)


def _finish_km_axes(ax, max_months: float, times: Sequence[float]) -> None:
    upper = max(max(times), float(np.ceil(max_months / 6.0) * 6.0))
    ax.set_xlim(0, upper)
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, ls="--", lw=1, color="0.4")
    ticks = sorted(set(list(times) + list(np.arange(0, upper + 0.1, 6))))
    ax.set_xticks(ticks)
    ax.set_xlabel("Months since IDDS implantation")
    ax.set_ylabel("Overall survival probability")
    ax.grid(alpha=0.25)


def km_figure(df: pd.DataFrame, analysis_set: str = "followup",
              at_risk_times: Sequence[float] = AT_RISK_TIMES) -> Figure:
    """Kaplan-Meier overall survival (the paper's Fig. 1, with CI band and risk table).

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame (see :func:`analysis.survival.survival_sets`).
    analysis_set : {"followup", "sensitivity"}, default "followup"
    at_risk_times : sequence of float, default (0, 3, 6, 12, 18, 24)
        Months for the number-at-risk table.

    Returns
    -------
    matplotlib.figure.Figure
        Step curve with censor marks, 95 % log-log band, dashed S = 0.5 line.

    Raises
    ------
    ValueError
        As :func:`analysis.survival.survival_sets`.
    """
    frame = survival_sets(df, strata=()).get(analysis_set)
    t = frame["time_days"].to_numpy(float)
    e = frame["event"].to_numpy(int)
    fig = _new_figure(7.5, 4.8)
    ax = fig.add_axes((0.14, 0.27, 0.82, 0.65))
    label = f"{'Follow-up set' if analysis_set == 'followup' else 'All patients'} (n = {len(t)}, {e.sum()} deaths)"
    _draw_km(ax, t, e, _COLORS[0], label)
    _finish_km_axes(ax, t.max() / DAYS_PER_MONTH, at_risk_times)
    ax.legend(loc="upper right", frameon=False, fontsize=9)
    ax.set_title("Overall survival after IDDS implantation")
    _at_risk_table(ax, [("all", t / DAYS_PER_MONTH, "black")], at_risk_times)
    return fig


def km_by_stratum_figure(df: pd.DataFrame, variable: str, analysis_set: str = "followup",
                         at_risk_times: Sequence[float] = AT_RISK_TIMES) -> Figure:
    """Kaplan-Meier curves by the levels of one stratification variable.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with the stratum's source column(s).
    variable : str
        One of :data:`analysis.survival.DEFAULT_STRATA` (or ``underweight``,
        ``itt_any``).
    analysis_set : {"followup", "sensitivity"}, default "followup"
    at_risk_times : sequence of float

    Returns
    -------
    matplotlib.figure.Figure
        One curve (with censor marks, no band) per level; log-rank p in the title.

    Raises
    ------
    ValueError
        On a missing source column or unknown variable.
    """
    frame = survival_sets(df, strata=[variable]).get(analysis_set)
    col = f"stratum_{variable}"
    levels = sorted({str(v) for v in frame[col].dropna()})
    extra = max(0, len(levels) - 1)
    fig = _new_figure(7.5, 4.8 + 0.3 * extra)
    ax = fig.add_axes((0.18, 0.27 + 0.035 * extra, 0.78, 0.65 - 0.035 * extra))
    groups = []
    for i, lv in enumerate(levels):
        sub = frame.loc[frame[col].astype("object") == lv]
        color = _COLORS[i % len(_COLORS)]
        t = sub["time_days"].to_numpy(float)
        e = sub["event"].to_numpy(int)
        _draw_km(ax, t, e, color, f"{variable}={lv} (n = {len(t)})", ci=False)
        groups.append((lv, t / DAYS_PER_MONTH, color))
    _finish_km_axes(ax, frame["time_days"].max() / DAYS_PER_MONTH, at_risk_times)
    ax.legend(loc="upper right", frameon=False, fontsize=8)
    lr = logrank_tests(df, [variable])
    p = lr.loc[lr["analysis_set"] == analysis_set, "p_value"]
    ptxt = f"log-rank p = {fmt_p(float(p.iloc[0]))}" if len(p) and p.iloc[0] == p.iloc[0] else ""
    ax.set_title(f"Overall survival by {variable} (exploratory) {ptxt}".strip())
    _at_risk_table(ax, groups, at_risk_times)
    return fig


def forest_figure(result: CoxResult) -> Figure:
    """Forest plot of the Cox model's hazard ratios (log scale) with 95 % CIs.

    Parameters
    ----------
    result : CoxResult
        Output of :func:`analysis.cox.cox_model`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``result`` is not a :class:`CoxResult`.
    """
    if not isinstance(result, CoxResult):
        raise ValueError(f"forest_figure: expected a CoxResult, got {type(result).__name__}")
    c = result.coefficients
    k = len(c)
    fig = _new_figure(7.5, 1.2 + 0.5 * k)
    ax = fig.add_axes((0.30, 0.18, 0.45, 0.72))
    y = np.arange(k)[::-1]
    ax.errorbar(c["hr"], y, xerr=[c["hr"] - c["hr_ci_low"], c["hr_ci_high"] - c["hr"]], fmt="s",
                color="black", ecolor="black", capsize=3, ms=5)
    ax.axvline(1.0, ls="--", color="0.5", lw=1)
    ax.set_xscale("log")
    lo = float(min(c["hr_ci_low"].min(), 1.0))
    hi = float(max(c["hr_ci_high"].max(), 1.0))
    ax.set_xlim(lo / 1.25, hi * 1.25)
    ticks = [v for v in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if lo / 1.25 <= v <= hi * 1.25]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y)
    ax.set_yticklabels(c["label"])
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel("Hazard ratio (95 % CI, log scale)")
    for yi, disp, p in zip(y, c["display"], c["p_display"], strict=True):
        ax.text(1.02, yi, f"{disp}   p {p if p.startswith('<') else '= ' + p}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
    ax.set_title(f"Cox model (Efron), n = {result.n}, {result.n_events} deaths, "
                 f"C = {result.concordance:.2f}", fontsize=10)
    return fig


def nrs_figure(df: pd.DataFrame) -> Figure:
    """NRS before vs after IDDS in the follow-up set.

    Left: each patient's pair as a line (small horizontal jitter) with means ±
    SD. Right: the distribution of scores before and after.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with ``followup_status``, ``baseline_nrs``, ``followup_nrs``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        As :func:`analysis.pain.paired_nrs`.
    """
    pairs = paired_nrs(df)
    pre = pairs["before"].to_numpy(float)
    post = pairs["after"].to_numpy(float)
    fig = _new_figure(9, 4.2)
    ax1 = fig.add_axes((0.08, 0.14, 0.38, 0.76))
    ax2 = fig.add_axes((0.56, 0.14, 0.40, 0.76))
    rng = np.random.default_rng(0)  # deterministic jitter, display only
    jit = rng.uniform(-0.06, 0.06, size=pre.size)
    for a, b, j in zip(pre, post, jit, strict=True):
        ax1.plot([0 + j, 1 + j], [a + 0.0, b + 0.0], color="0.6", lw=0.6, alpha=0.6)
    for x, v, col in ((0, pre, _COLORS[1]), (1, post, _COLORS[0])):
        ax1.errorbar([x], [v.mean()], yerr=[v.std(ddof=1)], fmt="o", color=col, capsize=6, ms=8, zorder=5)
    ax1.set_xticks([0, 1])
    ax1.set_xticklabels(["Before IDDS", "After IDDS"])
    ax1.set_xlim(-0.4, 1.4)
    ax1.set_ylim(-0.5, 10.5)
    ax1.set_ylabel("NRS (0-10)")
    ax1.set_title(f"Paired scores (n = {pre.size}); mean \u00b1 SD")
    scores = np.arange(0, 11)
    cb = np.array([(pre == s).sum() for s in scores])
    ca = np.array([(post == s).sum() for s in scores])
    ax2.bar(scores - 0.2, cb, width=0.4, color=_COLORS[1], label="Before")
    ax2.bar(scores + 0.2, ca, width=0.4, color=_COLORS[0], label="After")
    ax2.set_xticks(scores)
    ax2.set_xlabel("NRS")
    ax2.set_ylabel("Patients")
    ax2.legend(frameon=False)
    ax2.set_title("Distribution of scores")
    return fig


def implants_figure(df: pd.DataFrame) -> Figure:
    """Bar chart of index implants per calendar year.

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with ``implant_year`` or ``implant_date``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        As :func:`analysis.trends.implants_by_year`.
    """
    counts = implants_by_year(df)
    fig = _new_figure(5.5, 4)
    ax = fig.add_axes((0.14, 0.14, 0.80, 0.76))
    ax.bar(counts["implant_year"].astype(str), counts["n"], color=_COLORS[0])
    for x, (n, disp) in enumerate(zip(counts["n"], counts["display"], strict=True)):
        ax.text(x, n, disp, ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max(1, counts["n"].max()) * 1.15)
    ax.set_xlabel("Year of implantation")
    ax.set_ylabel("Patients")
    ax.set_title("IDDS implants per year")
    return fig
