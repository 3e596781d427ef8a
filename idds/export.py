"""Aggregate export: the outcome marts as CSV for sharing with other centres.

Usage::

    idds export --aggregate OUT_DIR [--publish data/analyst.duckdb]

or from Python::

    from idds.export import export_aggregate
    summary = export_aggregate(Path("data/analyst.duckdb"), Path("share/2024-03"))

The analyst file is opened **read-only** (the documented analyst path: no writer lock,
the pipeline can publish meanwhile). ``OUT_DIR`` receives one CSV per aggregate table
(UTF-8, comma separated, a blank cell is "suppressed or not available") and a
``README.txt`` that states the rule and lists every suppressed cell:

``table1.csv``, ``table2.csv``, ``table3.csv``
    the paper's tables in long form (``n``, ``denominator``, ``value`` = percentage,
    mean or median, ``sd``, ``q1``, ``q3``, ``display``, the paper's value beside it).
``implants_by_year.csv``, ``cohort_attrition.csv``, ``pain_response.csv``,
``survival_summary.csv``
    as in the analyst file, with the columns listed in ``EXPORT_COLUMNS``.
``survival_km_timepoints.csv``
    the Kaplan-Meier curves read at fixed times (0, 3, 6, 9, 12, 18, 24, 30, 36 months)
    instead of the step table.

Every CSV has a ``suppressed`` column: the names of the columns blanked in that row
(``;``-separated), empty when nothing was.

The suppression rule (``min_cell`` = 5 by default):

1. *Primary*: a count of 1 to 4 patients is blanked, with everything computed from it
   (its percentage, display text, the paper's value and the match flag; for a mean,
   median or survival row whose ``n`` is blanked, its statistics too).
2. *Complementary*: counts that are linked by a published total are audited together:
   the levels of one variable against its denominator (the unlisted remainder, e.g.
   the "no" of a yes/no row, is a cell too), composite levels ("stopped or lt_100",
   "not followed"), ``X_any`` against ``X_count``, nested thresholds (``ome_gt200`` and
   ``ome_gt500``), a survival row's ``n = n_events + n_censored``, the strata of a
   variable against the overall row, a survival stratum (follow-up set) against the
   matching Table 1/2 count of all included patients, the attrition chain, the
   implant-year changes, and the same count published twice (an implant year in
   ``table1`` and ``implants_by_year``, "(among trial recipients)" rows, the ``n`` of a
   mean or median row equal to a level's count, Table 3's deaths and the survival
   overall row, the two ``pain_response`` rows). For every small cell
   (published or implied) the range of values consistent with everything published is
   computed by linear programming; while it spans fewer than ``min_cell`` values, the
   smallest further count of the same relations is blanked too. So no suppressed cell
   can be recovered from published totals or from the other levels of its variable.
3. Never exported: patient-level tables (``cohort_idds``, ``fct_implants``,
   ``dim_patients``, the Kaplan-Meier step table), ``patient_key``, any dq table,
   ``reproduction`` (it repeats every cell), individual values (``min``, ``max``,
   ``censored_min_months``, ``censored_max_months``), free-text ``note`` and the
   attrition ``reason`` (they repeat counts; IC ids stay in ``ic_ids``).
4. Survival (``survival_summary`` and the time points) is exported for the follow-up
   analysis set (the paper's) only: the sensitivity set differs from it by the patients
   not followed, and the two sets side by side, stratum by stratum, would single out a
   perioperative death or an explant. A survival row whose ``n`` or ``n_events`` is
   blanked loses its estimates too.
5. Kaplan-Meier, decided: the step table is not exported (every step is one patient's
   time of death or censoring). The curves are read at fixed times instead; a time point
   with fewer than ``min_cell`` patients at risk is blanked, ``n_at_risk`` is rounded
   to a multiple of 5, and a curve whose stratum size or deaths are suppressed in
   ``survival_summary`` is blanked (its survival fractions would give them away). In
   ``survival_summary`` the 6- and 12-month survival is blanked when fewer than
   ``min_cell`` patients are at risk then.

Not audited (review the export before it leaves): relations between different
variables beyond those named above (e.g. nested thresholds other than ``*_gtNNN``, or
one variable's level being the denominator of another), and differencing between two
exports of different runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from idds.settings import ConfigError

__all__ = ["EXPORT_COLUMNS", "EXPORTS", "KM_TIMEPOINTS_MONTHS", "ExportError", "export_aggregate"]

log = logging.getLogger(__name__)

MIN_CELL = 5
KM_TIMEPOINTS_MONTHS: tuple[float, ...] = (0, 3, 6, 9, 12, 18, 24, 30, 36)
MARKER = "suppressed"
#: Survival is exported for the paper's analysis set only: the sensitivity set adds 24
#: patients (single perioperative deaths and explants among them), and the difference
#: between the two sets, stratum by stratum, would single them out.
SURVIVAL_SETS: tuple[str, ...] = ("followup",)

_TABLE_COLUMNS = (
    "row_order", "section", "variable", "level", "statistic", "n", "denominator", "value", "sd",
    "q1", "q3", "value_type7", "q1_type7", "q3_type7", "display", "paper_display",
    "matches_paper", "ic_ids",
)

#: The columns each exported CSV carries (a whitelist: nothing else leaves).
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "table1": _TABLE_COLUMNS,
    "table2": _TABLE_COLUMNS,
    "table3": _TABLE_COLUMNS,
    "implants_by_year": (
        "implant_year", "n", "denominator", "percent", "display", "paper_display", "matches_paper",
        "change_from_previous",
    ),
    "cohort_attrition": ("step_order", "step", "rule", "n_remaining", "n_excluded"),
    "pain_response": (
        "test", "n", "before_mean", "before_sd", "after_mean", "after_sd", "mean_difference",
        "ci_low", "ci_high", "statistic", "p_value", "p_display", "df", "effect_size",
        "effect_size_name", "z", "n_zero_differences", "n_improved", "pct_improved",
        "n_reduction_ge30", "pct_reduction_ge30", "n_reduction_ge50", "pct_reduction_ge50",
    ),
    "survival_summary": (
        "analysis_set", "stratum", "variable", "level", "n", "n_events", "n_censored",
        "median_months", "median_ci_low", "median_ci_high", "t_s075_months", "t_s025_months",
        "surv_6m", "surv_6m_ci_low", "surv_6m_ci_high", "surv_12m", "surv_12m_ci_low",
        "surv_12m_ci_high", "median_followup_months", "desc_median_months", "desc_q1_months",
        "desc_q3_months", "logrank_p", "display", "median_ci_display",
    ),
    "survival_km_timepoints": (
        "analysis_set", "stratum", "time_months", "n_at_risk_rounded", "survival", "ci_low",
        "ci_high",
    ),
}
EXPORTS: tuple[str, ...] = tuple(EXPORT_COLUMNS)

#: Columns blanked with a suppressed count, by file and count column.
_TABLE_STATS = ("value", "sd", "q1", "q3", "value_type7", "q1_type7", "q3_type7", "display",
                "paper_display", "matches_paper")
_SURVIVAL_STATS = tuple(c for c in EXPORT_COLUMNS["survival_summary"]
                        if c not in ("analysis_set", "stratum", "variable", "level", "n", "n_events",
                                     "n_censored", "logrank_p"))
_DEPENDENT: dict[str, dict[str, tuple[str, ...]]] = {
    "table1": {"n": _TABLE_STATS, "denominator": ("value", "display", "paper_display", "matches_paper")},
    "implants_by_year": {"n": ("percent", "display", "paper_display", "matches_paper"),
                         "denominator": ("percent", "display", "paper_display", "matches_paper")},
    "pain_response": {
        "n": tuple(c for c in EXPORT_COLUMNS["pain_response"] if c not in ("test", "effect_size_name")),
        "n_improved": ("pct_improved",),
        "n_reduction_ge30": ("pct_reduction_ge30",),
        "n_reduction_ge50": ("pct_reduction_ge50",),
    },
    "survival_summary": {"n": _SURVIVAL_STATS, "n_events": _SURVIVAL_STATS},
}
_DEPENDENT["table2"] = _DEPENDENT["table3"] = _DEPENDENT["table1"]

_INF = math.inf


class ExportError(Exception):
    """The export could not protect a small cell (should not happen; nothing is written)."""


# ------------------------------------------------------------------------------------------
# the audit: count cells, the linear relations between them, complementary suppression
# ------------------------------------------------------------------------------------------

Location = tuple[str, int, str]  # (file, row position, column)


@dataclass
class _Cell:
    key: tuple
    value: float
    lo: float = 0.0
    hi: float = _INF
    cost: float = _INF  # complementary suppression picks the cheapest; inf = never
    locations: list[Location] = field(default_factory=list)
    suppressed: bool = False

    @property
    def published(self) -> bool:
        return bool(self.locations)

    @property
    def unknown(self) -> bool:
        return self.suppressed or not self.published


class _Audit:
    """Cells (published counts and implied, unpublished ones) and linear equations."""

    def __init__(self, min_cell: int) -> None:
        self.min_cell = min_cell
        self.cells: dict[tuple, _Cell] = {}
        self._parent: dict[tuple, tuple] = {}
        self._equations: list[dict[tuple, float]] = []
        self.warnings: list[str] = []

    # -- building ---------------------------------------------------------------------------
    def count(self, key: tuple, value, location: Location | None = None, cost: float | None = None,
              lo: float = 0.0) -> tuple | None:
        """Register a published count (or add a location to it); None when the value is missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return None
        value = float(value)
        cell = self.cells.get(self.find(key)) if key in self._parent else None
        if cell is not None and abs(cell.value - value) > 1e-9:
            key = (*key, len(self._parent))  # a different quantity under the same label
            cell = None
        if cell is None:
            if cost is None:  # the smallest counts first; a zero protects nothing
                cost = abs(value) if value else 1e6
            cell = self.cells[key] = _Cell(key, value, lo=lo, hi=_INF, cost=cost)
            self._parent[key] = key
        elif cost is not None:
            cell.cost = max(cell.cost, cost)
        if location is not None:
            cell.locations.append(location)
        return key

    def hidden(self, key: tuple, value: float, lo: float = 0.0) -> tuple:
        """An implied count nobody publishes (a remainder, a difference)."""
        if key not in self.cells:
            self.cells[key] = _Cell(key, float(value), lo=lo, cost=_INF)
            self._parent[key] = key
        return key

    def value(self, key: tuple) -> float:
        return self.cells[self.find(key)].value

    def find(self, key: tuple) -> tuple:
        while self._parent[key] != key:
            self._parent[key] = self._parent[self._parent[key]]
            key = self._parent[key]
        return key

    def same(self, a: tuple | None, b: tuple | None) -> bool:
        """Declare two cells the same quantity (when their values agree)."""
        if a is None or b is None or a not in self.cells or b not in self.cells:
            return False
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ca, cb = self.cells[ra], self.cells[rb]
        if abs(ca.value - cb.value) > 1e-9:
            return False
        self._parent[rb] = ra
        ca.cost = max(ca.cost, cb.cost) if ca.published and cb.published else (
            ca.cost if ca.published else cb.cost)
        ca.locations += cb.locations
        ca.lo, ca.hi = max(ca.lo, cb.lo), min(ca.hi, cb.hi)
        del self.cells[rb]
        return True

    def equation(self, terms: dict[tuple | None, float], what: str = "") -> bool:
        """sum(coef * cell) = 0; kept only when it holds for the true values."""
        if any(k is None for k in terms):
            return False
        total = sum(coef * self.cells[self.find(k)].value for k, coef in terms.items())
        if abs(total) > 1e-6:
            log.debug("relation %s does not hold (%s); not used", what, total)
            return False
        self._equations.append(dict(terms))
        return True

    # -- solving ----------------------------------------------------------------------------
    def _resolved_equations(self) -> list[dict[tuple, float]]:
        out = []
        for eq in self._equations:
            merged: dict[tuple, float] = defaultdict(float)
            for k, coef in eq.items():
                merged[self.find(k)] += coef
            merged = {k: v for k, v in merged.items() if abs(v) > 1e-12}
            if merged:
                out.append(merged)
        return out

    def _component(self, key: tuple, eqs: list[dict[tuple, float]],
                   by_cell: dict[tuple, list[int]]) -> tuple[set[tuple], set[int]]:
        """Unknown cells linked to ``key`` through equations, and those equations."""
        cells, used, todo = {key}, set(), [key]
        while todo:
            k = todo.pop()
            for i in by_cell.get(k, ()):
                if i in used:
                    continue
                used.add(i)
                for other in eqs[i]:
                    if other not in cells and self.cells[other].unknown:
                        cells.add(other)
                        todo.append(other)
        return cells, used

    def interval(self, key: tuple, eqs=None, by_cell=None) -> tuple[float, float]:
        """The smallest and largest value of ``key`` consistent with everything published."""
        from scipy.optimize import linprog

        if eqs is None:
            eqs = self._resolved_equations()
            by_cell = self._index(eqs)
        cell = self.cells[key]
        if not cell.unknown:
            return cell.value, cell.value
        unknowns, used = self._component(key, eqs, by_cell)
        order = sorted(unknowns, key=repr)
        pos = {k: i for i, k in enumerate(order)}
        a_eq, b_eq = [], []
        for i in sorted(used):
            row = np.zeros(len(order))
            rhs = 0.0
            for k, coef in eqs[i].items():
                if k in pos:
                    row[pos[k]] += coef
                else:
                    rhs -= coef * self.cells[k].value
            a_eq.append(row)
            b_eq.append(rhs)
        bounds = [(self.cells[k].lo if math.isfinite(self.cells[k].lo) else None,
                   self.cells[k].hi if math.isfinite(self.cells[k].hi) else None) for k in order]
        if not a_eq:
            lo = self.cells[key].lo
            return lo, _INF
        result = []
        for sign in (1.0, -1.0):
            c = np.zeros(len(order))
            c[pos[key]] = sign
            res = linprog(c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=bounds, method="highs")
            if res.status == 3:  # unbounded
                result.append(-_INF if sign > 0 else _INF)
            elif res.status != 0:
                raise ExportError(f"the suppression audit failed for {key}: {res.message}")
            else:
                result.append(sign * res.fun)
        return result[0], result[1]

    @staticmethod
    def _index(eqs: list[dict[tuple, float]]) -> dict[tuple, list[int]]:
        by_cell: dict[tuple, list[int]] = defaultdict(list)
        for i, eq in enumerate(eqs):
            for k in eq:
                by_cell[k].append(i)
        return by_cell

    def sensitive(self) -> list[_Cell]:
        """Counts of 1 to min_cell - 1 patients, published or implied."""
        return [c for c in self.cells.values()
                if c.lo >= 0 and 1 <= round(c.value) <= self.min_cell - 1]

    def protect(self) -> None:
        """Primary suppression, then complementary suppression until every small cell's
        feasible range spans at least ``min_cell`` values."""
        need = self.min_cell - 1
        small = sorted(self.sensitive(), key=lambda c: (c.value, repr(c.key)))
        for c in small:
            if c.published:
                c.suppressed = True
        eqs = self._resolved_equations()
        by_cell = self._index(eqs)
        for c in small:
            while True:
                lo, hi = self.interval(c.key, eqs, by_cell)
                if hi - lo >= need - 1e-9:
                    break
                unknowns, used = self._component(c.key, eqs, by_cell)
                candidates = sorted(
                    {k for i in used for k in eqs[i]
                     if self.cells[k].published and not self.cells[k].suppressed
                     and math.isfinite(self.cells[k].cost)},
                    key=lambda k: (self.cells[k].cost, repr(k)))
                if not candidates:
                    if hi - lo > 1e-9:
                        self.warnings.append(
                            f"{_describe(c)} can be narrowed to {lo:g}-{hi:g} from published totals "
                            "(no further cell can be suppressed)")
                        break
                    raise ExportError(f"cannot protect {_describe(c)}: it is recoverable from totals")
                chosen = None
                for k in candidates:
                    self.cells[k].suppressed = True
                    lo2, hi2 = self.interval(c.key, eqs, by_cell)
                    if hi2 - lo2 > hi - lo + 1e-9:
                        chosen = k
                        break
                    self.cells[k].suppressed = False
                if chosen is None:
                    self.cells[candidates[0]].suppressed = True

    def suppressed_locations(self) -> set[Location]:
        return {loc for c in self.cells.values() if c.suppressed for loc in c.locations}


def _describe(cell: _Cell) -> str:
    if cell.locations:
        f, row, col = cell.locations[0]
        return f"{f} row {row + 1} column {col}"
    return "an implied count " + "/".join(str(p) for p in cell.key)


# ------------------------------------------------------------------------------------------
# reading and shaping the marts
# ------------------------------------------------------------------------------------------


def _read(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    schema, name = table.split(".")
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name]).fetchall()[0][0]
    if not exists:
        return None
    return con.execute(f"select * from {schema}.{name}").df()


def _shape(frame: pd.DataFrame | None, name: str) -> pd.DataFrame:
    columns = list(EXPORT_COLUMNS[name])
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = frame.reindex(columns=columns).reset_index(drop=True)
    return out.astype(object).where(out.notna(), None)


def _num(v) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _text(v) -> str:
    return "" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)


_AMONG = re.compile(r"\s*\((among|in) [^)]*\)\s*$")
_THRESHOLD = re.compile(r"^(.+)_gt(\d+)$")


def _table_cells(audit: _Audit, name: str, df: pd.DataFrame) -> dict[tuple[str, str], list]:
    """Cells and relations of one of Tables 1-3; returns (variable, level) -> [(den, key)]."""
    by_level: dict[tuple[str, str], list] = defaultdict(list)
    groups: dict[tuple[str, float], list[int]] = defaultdict(list)
    for i, r in df.iterrows():
        if r["statistic"] == "n_pct" and _num(r["denominator"]) is not None and _num(r["n"]) is not None:
            groups[(_text(r["variable"]), _num(r["denominator"]))].append(i)
    cat_keys: dict[int, tuple] = {}
    # categorical rows: one cell per row, the denominator a total
    for (var, den), rows in groups.items():
        den_key = audit.count(("den", name, var, den), den, cost=_INF)
        for i in rows:
            audit.cells[den_key].locations.append((name, i, "denominator"))
        levels: dict[str, tuple] = {}
        for i in rows:
            level = _text(df.at[i, "level"])
            key = audit.count(("cat", name, var, level, den), _num(df.at[i, "n"]), (name, i, "n"))
            cat_keys[i] = key
            levels[level] = key
            by_level[(var, level)].append((den, key))
        value = {lv: audit.cells[k].value for lv, k in levels.items()}
        composites: dict[str, list[str]] = {}
        for lv in levels:
            parts: list[str] = []
            if " or " in lv and all(p in levels for p in lv.split(" or ")):
                parts = lv.split(" or ")
            elif lv.startswith("not ") and lv[4:] in levels:
                parts = [o for o in levels if o not in (lv, lv[4:]) and " or " not in o
                         and not o.startswith("not ")]
            if parts and abs(value[lv] - sum(value[p] for p in parts)) < 1e-9:
                composites[lv] = parts
        for lv, parts in composites.items():
            audit.equation({levels[lv]: 1.0, **{levels[p]: -1.0 for p in parts}}, f"{name}.{var}.{lv}")
        partition = [lv for lv in levels if lv not in composites]
        rest = den - sum(value[lv] for lv in partition)
        if rest >= 0:
            terms = {levels[lv]: 1.0 for lv in partition}
            if rest > 0:
                label = "not:" + partition[0] if len(partition) == 1 else "remainder"
                terms[audit.hidden(("cat", name, var, label, den), rest)] = 1.0
            terms[den_key] = -1.0
            audit.equation(terms, f"{name}.{var} sums to its denominator")
        else:  # overlapping levels: each level against its own complement
            for lv in partition:
                h = audit.hidden(("cat", name, var, "not:" + lv, den), den - value[lv])
                audit.equation({levels[lv]: 1.0, h: 1.0, den_key: -1.0}, f"{name}.{var}.{lv}")
    # "(among ...)" rows repeat the counts of the plain level
    for i, key in cat_keys.items():
        level = _text(df.at[i, "level"])
        if _AMONG.search(level):
            plain = _AMONG.sub("", level)
            for _den, other in by_level.get((_text(df.at[i, "variable"]), plain), []):
                if audit.same(other, key):
                    break
    # X_any (>= 1) = the non-zero levels of X_count
    for (var, den), rows in groups.items():
        if var.endswith("_any") and len(rows) == 1 and (var[:-4] + "_count", den) in groups:
            count_rows = groups[(var[:-4] + "_count", den)]
            nonzero = [cat_keys[i] for i in count_rows if _text(df.at[i, "level"]) != "0"]
            audit.equation({cat_keys[rows[0]]: 1.0, **{k: -1.0 for k in nonzero}}, f"{name}.{var}")
    # nested thresholds (ome_gt200 >= ome_gt500): the difference is a count too
    thresholds: dict[tuple[str, float], list[tuple[int, tuple]]] = defaultdict(list)
    for (var, den), rows in groups.items():
        m = _THRESHOLD.match(var)
        if m and len(rows) == 1:
            thresholds[(m.group(1), den)].append((int(m.group(2)), cat_keys[rows[0]]))
    for (stem, den), items in thresholds.items():
        items.sort()
        for (t1, k1), (t2, k2) in zip(items, items[1:], strict=False):
            d = audit.cells[audit.find(k1)].value - audit.cells[audit.find(k2)].value
            if d >= 0:
                h = audit.hidden(("cat", name, f"{stem}_gt{t1}-{t2}", "between", den), d)
                audit.equation({k1: 1.0, k2: -1.0, h: -1.0}, f"{name}.{stem} thresholds")
    # means and medians: n is a count; the same count as a categorical level when it matches
    for i, r in df.iterrows():
        if r["statistic"] == "n_pct" or _num(r["n"]) is None:
            continue
        key = audit.count(("stat", name, int(r["row_order"]), "n"), _num(r["n"]), (name, i, "n"))
        audit.count(("stat", name, int(r["row_order"]), "denominator"), _num(r["denominator"]),
                    (name, i, "denominator"), cost=_INF)
        level = _AMONG.sub("", _text(r["level"]))
        for (_var, lv), found in by_level.items():
            if lv == level and any(audit.same(k, key) for _den, k in found):
                break
    return by_level


def _implants_cells(audit: _Audit, df: pd.DataFrame, table1_levels: dict) -> None:
    name = "implants_by_year"
    keys: list[tuple | None] = []
    den_key = None
    for i, r in df.iterrows():
        den = _num(r["denominator"])
        if den is not None:
            den_key = audit.count(("den", name, den), den, (name, i, "denominator"), cost=_INF)
        year = _text(r["implant_year"])
        key = audit.count((name, year), _num(r["n"]), (name, i, "n"))
        keys.append(key)
        for _den, other in table1_levels.get(("implant_year", year), []):
            if den is not None and _den == den:
                audit.same(other, key)
        change = _num(r["change_from_previous"])
        if change is not None and i > 0 and keys[i - 1] is not None and key is not None:
            ck = audit.count((name, year, "change"), change, (name, i, "change_from_previous"),
                             cost=abs(change) + 0.5, lo=-_INF)
            audit.cells[ck].hi = _INF
            audit.equation({ck: 1.0, key: -1.0, keys[i - 1]: 1.0}, f"{name}.change {year}")
    if den_key is not None and keys and all(k is not None for k in keys):
        total = sum(audit.cells[audit.find(k)].value for k in keys)
        den = audit.cells[den_key].value
        terms = {k: 1.0 for k in keys}
        if den - total > 0:
            terms[audit.hidden((name, "remainder"), den - total)] = 1.0
        terms[den_key] = -1.0
        audit.equation(terms, f"{name} sums to its denominator")


def _attrition_cells(audit: _Audit, df: pd.DataFrame) -> None:
    name = "cohort_attrition"
    last = len(df) - 1
    prev = None
    for i, r in df.iterrows():
        remaining = audit.count((name, i, "n_remaining"), _num(r["n_remaining"]), (name, i, "n_remaining"),
                                cost=_INF if i in (0, last) else None)
        excluded = audit.count((name, i, "n_excluded"), _num(r["n_excluded"]), (name, i, "n_excluded"))
        if i > 0 and prev is not None:
            audit.equation({prev: 1.0, excluded: -1.0, remaining: -1.0}, f"{name} step {i}")
        prev = remaining


def _pain_cells(audit: _Audit, df: pd.DataFrame) -> None:
    name = "pain_response"
    cols = ("n", "n_zero_differences", "n_improved", "n_reduction_ge30", "n_reduction_ge50")
    per_row = []
    for i, r in df.iterrows():
        keys = {c: audit.count((name, i, c), _num(r[c]), (name, i, c), cost=_INF if c == "n" else None)
                for c in cols}
        per_row.append(keys)
        n, z, imp, g30, g50 = (keys[c] for c in cols)
        v = {c: (audit.cells[k].value if k is not None else None) for c, k in keys.items()}
        if None not in (n, z, imp):
            w = audit.hidden((name, i, "not_improved"), v["n"] - v["n_zero_differences"] - v["n_improved"])
            audit.equation({n: 1.0, z: -1.0, imp: -1.0, w: -1.0}, f"{name} improved")
        if None not in (imp, g30) and v["n_improved"] >= v["n_reduction_ge30"]:
            b = audit.hidden((name, i, "improved_lt30"), v["n_improved"] - v["n_reduction_ge30"])
            audit.equation({imp: 1.0, g30: -1.0, b: -1.0}, f"{name} ge30")
        if None not in (g30, g50) and v["n_reduction_ge30"] >= v["n_reduction_ge50"]:
            b = audit.hidden((name, i, "ge30_lt50"), v["n_reduction_ge30"] - v["n_reduction_ge50"])
            audit.equation({g30: 1.0, g50: -1.0, b: -1.0}, f"{name} ge50")
    for later in per_row[1:]:  # the tests repeat the same counts
        for c in cols:
            audit.same(per_row[0][c], later[c])


def _table_key(audit: _Audit, table_levels: dict[str, dict], var: str, level: str,
               population: float | None) -> tuple | None:
    """The Table 1-3 cell counting stratum ``var=level`` among all included patients."""
    if population is None:
        return None
    for tname, levels in table_levels.items():
        found = [k for den, k in levels.get((var, level), []) if den == population]
        plain = [(lv, k) for (v, lv), items in levels.items() if v == var
                 for den, k in items if den == population and not _AMONG.search(lv)]
        if not found and level in ("true", "false") and len(plain) == 1:
            lv, k = plain[0]
            if level == "true":
                found = [k]
            else:
                hk = ("cat", tname, var, "not:" + lv, population)
                found = [hk] if hk in audit._parent else []
        if found:
            return found[0]
    return None


def _survival_cells(audit: _Audit, df: pd.DataFrame, table_levels: dict[str, dict],
                    population: float | None) -> None:
    """Cells of survival_summary (the follow-up set): n = events + censored, strata add up to
    the overall row, and each stratum is a subset of the matching Table 1/2 count (the
    difference, patients not followed, is a count too)."""
    name = "survival_summary"
    rows: dict[tuple[str, str], dict[str, tuple | None]] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    for i, r in df.iterrows():
        aset, stratum = _text(r["analysis_set"]), _text(r["stratum"])
        overall = stratum == "overall"
        keys = {}
        for c, weight in (("n", 0.5), ("n_events", 1.5), ("n_censored", 0.5)):
            v = _num(r[c])
            cost = None if v is None else _INF if (overall and c == "n") else v * (1000.0 if overall else weight)
            keys[c] = audit.count((name, aset, stratum, c), v, (name, i, c), cost=cost)
        rows[(aset, stratum)] = keys
        meta[(aset, stratum)] = (_text(r["variable"]), _text(r["level"]))
        if None not in keys.values():
            audit.equation({keys["n"]: 1.0, keys["n_events"]: -1.0, keys["n_censored"]: -1.0},
                           f"{name} {aset} {stratum}")
    by_var: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (aset, stratum), (var, _lv) in meta.items():
        if stratum != "overall" and var:
            by_var[(aset, var)].append(stratum)
    for (aset, var), strata in by_var.items():
        overall = rows.get((aset, "overall"))
        if not overall:
            continue
        for c in ("n", "n_events", "n_censored"):
            keys = [rows[(aset, s)][c] for s in strata]
            if None in keys or overall[c] is None:
                continue
            rest = audit.value(overall[c]) - sum(audit.value(k) for k in keys)
            if rest < 0:
                continue
            terms = {k: 1.0 for k in keys}
            if rest > 0:
                terms[audit.hidden((name, aset, var, "remainder", c), rest)] = 1.0
            terms[overall[c]] = -1.0
            audit.equation(terms, f"{name} {aset} {var} {c}")
    for (aset, stratum), (var, level) in meta.items():
        if stratum == "overall":
            continue
        key = rows[(aset, stratum)]["n"]
        table = _table_key(audit, table_levels, var, level, population)
        if key is None or table is None:
            continue
        d = audit.value(table) - audit.value(key)
        if d >= 0:
            h = audit.hidden((name, aset, stratum, "not in set"), d)
            audit.equation({table: 1.0, key: -1.0, h: -1.0}, f"{name} {aset} {stratum} within table")
    # Table 3's deaths and censorings among the followed are the follow-up set's overall row
    fol = rows.get(("followup", "overall"))
    if fol and "table3" in table_levels:
        for (var, level), items in table_levels["table3"].items():
            if var != "os_event":
                continue
            col = "n_events" if level.startswith("died") else "n_censored" if level.startswith("censored") else None
            if col:
                for _den, k in items:
                    audit.same(k, fol[col])


# ------------------------------------------------------------------------------------------
# Kaplan-Meier at time points
# ------------------------------------------------------------------------------------------


def _km_at(km: pd.DataFrame, t: float) -> tuple[int, float | None, float | None, float | None]:
    """(patients at risk at t, survival, ci_low, ci_high) of one curve."""
    km = km.sort_values("time_months")
    later = km[km["time_months"] >= t - 1e-9]
    at_risk = int(later["n_at_risk"].iloc[0]) if len(later) else 0
    upto = km[km["time_months"] <= t + 1e-9]
    if not len(upto):
        return at_risk, 1.0, 1.0, 1.0
    last = upto.iloc[-1]
    return at_risk, _num(last["survival"]), _num(last["ci_low"]), _num(last["ci_high"])


def _km_timepoints(km: pd.DataFrame | None, min_cell: int) -> tuple[pd.DataFrame, dict]:
    name = "survival_km_timepoints"
    rows, at_risk = [], {}
    if km is not None and len(km):
        for (aset, stratum), curve in km.groupby(["analysis_set", "stratum"], sort=True):
            horizon = float(curve["time_months"].max())
            for t in KM_TIMEPOINTS_MONTHS:
                n, s, lo, hi = _km_at(curve, t)
                at_risk[(aset, stratum, t)] = n
                if t > horizon:
                    continue
                blank = n < min_cell
                rows.append({
                    "analysis_set": aset, "stratum": stratum, "time_months": t,
                    "n_at_risk_rounded": None if blank else int(5 * round(n / 5)),
                    "survival": None if blank else s, "ci_low": None if blank else lo,
                    "ci_high": None if blank else hi,
                    MARKER: "n_at_risk_rounded;survival;ci_low;ci_high" if blank else "",
                })
    out = pd.DataFrame(rows, columns=[*EXPORT_COLUMNS[name], MARKER])
    return out, at_risk


# ------------------------------------------------------------------------------------------
# the export
# ------------------------------------------------------------------------------------------


def _blank(frames: dict[str, pd.DataFrame], locations: Iterable[Location]) -> dict[str, dict[int, set[str]]]:
    """Blank each suppressed cell and what is computed from it; return file -> row -> columns."""
    blanked: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for f, row, col in locations:
        frame = frames[f]
        dependent = [c for c in _DEPENDENT.get(f, {}).get(col, ()) if c in frame.columns
                     and _text(frame.at[row, c]) != ""]
        blanked[f][row] |= {col, *dependent}
    for f, rows in blanked.items():
        for row, cols in rows.items():
            for c in cols:
                frames[f].at[row, c] = None
    return blanked


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for c in out.columns:
        if c in _INTEGER_COLUMNS:
            vals = [_num(v) for v in out[c]]
            if all(v is None or float(v).is_integer() for v in vals):
                out[c] = pd.array([None if v is None else int(v) for v in vals], dtype="Int64")
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


_INTEGER_COLUMNS = {"row_order", "n", "denominator", "implant_year", "change_from_previous", "step_order",
                    "n_remaining", "n_excluded", "n_events", "n_censored", "n_zero_differences",
                    "n_improved", "n_reduction_ge30", "n_reduction_ge50", "n_at_risk_rounded"}


def _row_label(name: str, frame: pd.DataFrame, row: int) -> str:
    r = frame.loc[row]
    if name.startswith("table"):
        return f"row_order {_text(r['row_order'])} ({_text(r['variable'])} = {_text(r['level']) or '-'})"
    if name == "implants_by_year":
        return f"implant_year {_text(r['implant_year'])}"
    if name == "cohort_attrition":
        return f"step {_text(r['step_order'])} ({_text(r['step'])})"
    if name == "pain_response":
        return f"test {_text(r['test'])}"
    if name == "survival_summary":
        return f"{_text(r['analysis_set'])} / {_text(r['stratum'])}"
    return f"{_text(r['analysis_set'])} / {_text(r['stratum'])} / {_text(r['time_months'])} months"


def export_aggregate(analyst_file: Path, out_dir: Path, min_cell: int = MIN_CELL) -> dict:
    """Write the aggregate outcome marts of ``analyst_file`` as CSV into ``out_dir``.

    Parameters
    ----------
    analyst_file : pathlib.Path
        The published analyst DuckDB file; opened read-only, never modified.
    out_dir : pathlib.Path
        Created if missing; existing CSVs of the same names are replaced.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are suppressed (see the module docstring).

    Returns
    -------
    dict
        ``out_dir``, ``files`` (file name -> rows), ``suppressed`` (file name -> number
        of suppressed cells), ``missing`` (marts absent from the analyst file),
        ``warnings``.

    Raises
    ------
    ConfigError
        When the analyst file does not exist.
    ExportError
        When a small cell cannot be protected (nothing is written then).
    """
    analyst_file = Path(analyst_file)
    out_dir = Path(out_dir)
    if min_cell < 2:
        raise ConfigError("min_cell must be at least 2.")
    if not analyst_file.is_file():
        raise ConfigError(f"The analyst file {analyst_file} does not exist: run `idds run` first "
                          "or pass --publish FILE.")
    sources = ("table1", "table2", "table3", "implants_by_year", "cohort_attrition", "pain_response",
               "survival_summary", "survival_km")
    try:
        con = duckdb.connect(str(analyst_file), read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(f"The analyst file {analyst_file} cannot be opened read-only "
                          f"({str(exc).splitlines()[0]}).") from exc
    try:
        marts = {s: _read(con, f"marts.{s}") for s in sources}
        run = []
        if _read_exists(con, "dq.dq_run"):
            with contextlib.suppress(duckdb.Error):  # provenance only: an older file may differ
                run = con.execute("select run_id from dq.dq_run where status = 'succeeded' "
                                  "order by started_at desc limit 1").fetchall()
    finally:
        con.close()
    missing = [s for s, f in marts.items() if f is None]

    order = {"table1": 0, "table2": 1, "table3": 2}
    tables = {s: marts[s].sort_values("row_order") if marts[s] is not None and "row_order" in marts[s]
              else marts[s] for s in order}
    frames: dict[str, pd.DataFrame] = {s: _shape(tables[s], s) for s in order}
    attrition = marts["cohort_attrition"]
    if attrition is not None and "step_order" in attrition:
        attrition = attrition.sort_values("step_order")
    implants = marts["implants_by_year"]
    if implants is not None and "implant_year" in implants:
        implants = implants.sort_values("implant_year")
    frames["implants_by_year"] = _shape(implants, "implants_by_year")
    frames["cohort_attrition"] = _shape(attrition, "cohort_attrition")
    frames["pain_response"] = _shape(marts["pain_response"], "pain_response")
    summary = marts["survival_summary"]
    km = marts["survival_km"]
    if summary is not None and "analysis_set" in summary:
        summary = summary[summary["analysis_set"].isin(SURVIVAL_SETS)]
    if km is not None and "analysis_set" in km:
        km = km[km["analysis_set"].isin(SURVIVAL_SETS)]
    if summary is not None and len(summary):
        summary = summary.sort_values(["analysis_set", "stratum"], key=lambda s: s.map(
            lambda v: "" if v == "overall" else str(v)))
    frames["survival_summary"] = _shape(summary, "survival_summary")
    km_frame, at_risk = _km_timepoints(km, min_cell)

    audit = _Audit(min_cell)
    table_levels = {s: _table_cells(audit, s, frames[s]) for s in order}
    _implants_cells(audit, frames["implants_by_year"], table_levels["table1"])
    _attrition_cells(audit, frames["cohort_attrition"])
    _pain_cells(audit, frames["pain_response"])
    population = _num(frames["cohort_attrition"]["n_remaining"].iloc[-1]) if len(frames["cohort_attrition"]) else None
    _survival_cells(audit, frames["survival_summary"], table_levels, population)
    audit.protect()

    blanked = _blank(frames, audit.suppressed_locations())
    # 6- and 12-month survival only where enough patients remain at risk
    ss = frames["survival_summary"]
    for i in ss.index:
        for months, cols in ((6, ("surv_6m", "surv_6m_ci_low", "surv_6m_ci_high")),
                             (12, ("surv_12m", "surv_12m_ci_low", "surv_12m_ci_high"))):
            n = at_risk.get((ss.at[i, "analysis_set"], ss.at[i, "stratum"], months))
            shown = [c for c in cols if _text(ss.at[i, c]) != ""]
            if n is not None and n < min_cell and shown:
                for c in shown:
                    ss.at[i, c] = None
                blanked["survival_summary"][i] |= set(shown)
    # a curve whose stratum size or deaths are suppressed is not shown at time points either
    # (its survival fractions would give the size away)
    hidden_curves = {(ss.at[i, "analysis_set"], ss.at[i, "stratum"]) for i in ss.index
                     if {"n", "n_events"} & blanked.get("survival_summary", {}).get(i, set())}
    km_cols = ("n_at_risk_rounded", "survival", "ci_low", "ci_high")
    for i in km_frame.index:
        if (km_frame.at[i, "analysis_set"], km_frame.at[i, "stratum"]) in hidden_curves:
            for c in km_cols:
                km_frame.at[i, c] = None
            km_frame.at[i, MARKER] = ";".join(km_cols)
    for name, frame in frames.items():
        frame[MARKER] = [";".join(c for c in EXPORT_COLUMNS[name] if c in blanked.get(name, {}).get(i, set()))
                         for i in frame.index]
    frames["survival_km_timepoints"] = km_frame

    out_dir.mkdir(parents=True, exist_ok=True)
    files, counts = {}, {}
    for name in EXPORTS:
        frame = frames[name]
        if "patient_key" in frame.columns:  # never, by construction; the last guard
            raise ExportError("patient_key must never be exported")
        path = out_dir / f"{name}.csv"
        _write_csv(frame, path)
        files[path.name] = int(len(frame))
        counts[path.name] = int(sum(len([c for c in m.split(";") if c]) for m in frame[MARKER]))
    _write_readme(out_dir, analyst_file, frames, files, counts, missing, audit.warnings, min_cell,
                  run[0] if run else None)
    return {"out_dir": str(out_dir), "files": files, "suppressed": counts, "missing": missing,
            "warnings": list(audit.warnings)}


def _read_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name]).fetchall()[0][0])


def _write_readme(out_dir: Path, analyst_file: Path, frames: dict[str, pd.DataFrame], files: dict,
                  counts: dict, missing: list[str], warnings: list[str], min_cell: int, run) -> None:
    lines = [
        "IDDS cancer-pain registry: aggregate outcome tables for sharing",
        "=" * 64,
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M} by `idds export --aggregate` from the analyst file "
        f"{analyst_file.name}" + (f" (pipeline run {run[0]})." if run else "."),
        "No patient-level row, no patient_key and no identifier is in these files.",
        "",
        "Suppression rule",
        "----------------",
        f"* Every count of 1 to {min_cell - 1} patients is blanked, together with what is computed",
        "  from it (its percentage, display text, the paper's value and the match flag; for a",
        "  mean, median or survival row whose n is blanked, its statistics too).",
        "* Complementary suppression: further counts are blanked so that no blanked count can be",
        "  recovered from published totals, from the other levels of the same variable (including",
        "  the unlisted remainder, e.g. the 'no' of a yes/no row), from n = events + censored,",
        "  from the strata against the overall row, from a survival stratum against the matching",
        "  Table 1/2 count (the patients not followed), from the attrition chain or the implant-",
        "  year changes, or from the same count published in another file. Each small cell's",
        "  range of values consistent with",
        f"  everything published spans at least {min_cell} values (checked by linear programming).",
        f"* Kaplan-Meier: read at {', '.join(f'{t:g}' for t in KM_TIMEPOINTS_MONTHS)} months only;",
        f"  rows with fewer than {min_cell} patients at risk are blanked and n_at_risk is rounded to",
        "  a multiple of 5; a curve whose size or deaths are blanked in survival_summary is blanked.",
        f"  6- and 12-month survival is blanked where fewer than {min_cell} are at risk.",
        "* Survival is exported for the follow-up analysis set (the paper's) only: the sensitivity",
        "  set adds the patients not followed, and the difference between the two sets, stratum",
        "  by stratum, would single out a perioperative death or an explant.",
        "* Not exported: patient-level tables, the Kaplan-Meier step table, minimum and maximum",
        "  values, free-text notes and attrition reasons (they repeat counts), the reproduction",
        "  table. Paper inconsistency ids stay in ic_ids.",
        "* A blank cell is suppressed when the row's `suppressed` column names it; otherwise the",
        "  value is not available.",
        "* Not audited: relations between different variables other than those named above, and",
        "  differences between exports of different runs. Share one export per run.",
        "",
        "Files",
        "-----",
    ]
    for name, rows in files.items():
        lines.append(f"{name}: {rows} rows, {counts[name]} cells suppressed")
    if missing:
        lines += ["", "Not in the analyst file (exported empty): " + ", ".join(sorted(missing))]
    if warnings:
        lines += ["", "Warnings:"] + [f"* {w}" for w in warnings]
    lines += ["", "Suppressed cells", "----------------"]
    any_cell = False
    for name in EXPORTS:
        frame = frames[name]
        if name == "survival_km_timepoints":
            n = int((frame[MARKER] != "").sum())
            if n:
                any_cell = True
                lines.append(f"{name}.csv: {n} time points blanked (fewer than {min_cell} at risk, "
                             "or the stratum's size or deaths are suppressed in survival_summary)")
            continue
        for i in frame.index:
            marker = frame.at[i, MARKER]
            if marker:
                any_cell = True
                lines.append(f"{name}.csv {_row_label(name, frame, i)}: {marker.replace(';', ', ')}")
    if not any_cell:
        lines.append("(none)")
    (out_dir / "README.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
