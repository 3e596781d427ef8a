"""Implants per calendar year (§3.1: 27, 18 and 51 in 2021-2023)."""

from __future__ import annotations

from fractions import Fraction

import pandas as pd

from . import paper as _paper
from .formatting import as_numeric, fmt_n_pct, require_columns

__all__ = ["IMPLANTS_BY_YEAR_COLUMNS", "implants_by_year"]

IMPLANTS_BY_YEAR_COLUMNS: tuple[str, ...] = (
    "implant_year", "n", "denominator", "percent", "display", "paper_display", "matches_paper",
    "change_from_previous",
)


def implants_by_year(df: pd.DataFrame) -> pd.DataFrame:
    """Number of index implants per calendar year (the ``implants_by_year`` mart).

    Parameters
    ----------
    df : pandas.DataFrame
        Cohort frame with ``implant_year`` or ``implant_date``.

    Returns
    -------
    pandas.DataFrame
        One row per year from the first to the last year present (years without
        implants get n = 0), columns :data:`IMPLANTS_BY_YEAR_COLUMNS`:
        ``percent`` is the exact share of all implants, ``display`` "n (pct)"
        half-up, ``paper_display``/``matches_paper`` compare with §3.1 where the
        paper prints the year, ``change_from_previous`` the difference in n.

    Raises
    ------
    ValueError
        If neither column is present, the frame is empty, or a year is missing.
    """
    where = "implants_by_year"
    if isinstance(df, pd.DataFrame) and "implant_year" in df.columns:
        require_columns(df, ["implant_year"], where)
        year = as_numeric(df["implant_year"], where)
    else:
        require_columns(df, ["implant_date"], where)
        year = pd.to_datetime(df["implant_date"]).dt.year.astype(float)
    if year.isna().any():
        raise ValueError(f"{where}: implant year is missing for {int(year.isna().sum())} patient(s)")
    year = year.astype(int)
    total = int(len(year))
    counts = year.value_counts()
    rows = []
    prev = None
    for y in range(int(year.min()), int(year.max()) + 1):
        n = int(counts.get(y, 0))
        key = f"implant_year_{y}"
        pv = _paper.PAPER.get(key)
        rows.append(dict(
            implant_year=y, n=n, denominator=total, percent=float(Fraction(100 * n, total)),
            display=fmt_n_pct(n, total),
            paper_display=pv.display if pv else "",
            matches_paper=_paper.compare(key, n=n, denominator=total) if pv else pd.NA,
            change_from_previous=(n - prev) if prev is not None else pd.NA,
        ))
        prev = n
    out = pd.DataFrame(rows, columns=list(IMPLANTS_BY_YEAR_COLUMNS))
    out["matches_paper"] = out["matches_paper"].astype("boolean")
    out["change_from_previous"] = out["change_from_previous"].astype("Int64")
    return out
