"""Number formatting and quantile conventions shared by the analysis package.

The seed paper was analysed in SPSS, whose displays differ from Python's defaults
in two ways that matter for an exact reproduction:

* **Percentages** are rounded *half-up* on the exact fraction ``n / N x 100``.
  Python's ``round`` and ``f"{x:.1f}"`` round half-to-even on a binary float and
  print 30/96 as ``31.2`` where the paper prints ``31.3``.
* **Quantiles** (median, IQR) follow SPSS EXAMINE's default HAVERAGE definition,
  which is Hyndman-Fan type 6, ``numpy.percentile(..., method="weibull")``.
  The numpy/pandas default (type 7, ``method="linear"``) is reported alongside.

Everything here is pure: no I/O, no global state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = [
    "EN_DASH",
    "PLUS_MINUS",
    "Quartiles",
    "decimals_of",
    "fmt_mean_sd",
    "fmt_median_iqr",
    "fmt_n_pct",
    "fmt_number",
    "fmt_p",
    "pct_half_up",
    "quartiles",
    "round_half_up",
    "spss_quantile",
    "require_columns",
    "as_bool",
    "as_numeric",
    "as_text",
]

EN_DASH = "\u2013"
PLUS_MINUS = "\u00b1"


def _quantum(dp: int) -> Decimal:
    if dp < 0:
        raise ValueError(f"dp must be >= 0, got {dp}")
    return Decimal(1).scaleb(-dp)


def _to_decimal(x: Real | Decimal | Fraction | str) -> Decimal:
    """Exact-as-printed decimal for a number.

    Floats go through ``repr`` (the shortest string that round-trips), so 0.125
    stays 0.125 and 2.675 stays 2.675 rather than 2.67499999... .
    """
    if isinstance(x, Decimal):
        return x
    if isinstance(x, Fraction):
        # 60 significant digits is far beyond any display precision used here.
        from decimal import localcontext

        with localcontext() as ctx:
            ctx.prec = 60
            return Decimal(x.numerator) / Decimal(x.denominator)
    if isinstance(x, str):
        return Decimal(x.replace(",", "").strip())
    if isinstance(x, Integral):
        return Decimal(int(x))
    xf = float(x)
    if not math.isfinite(xf):
        raise ValueError(f"cannot round a non-finite number: {x!r}")
    return Decimal(repr(xf))


def round_half_up(x: Real | Decimal | Fraction | str, dp: int = 0) -> Decimal:
    """Round half away from zero at ``dp`` decimals (SPSS display rounding).

    Parameters
    ----------
    x : real, Decimal, Fraction or str
        The number. A ``Fraction`` is rounded exactly; a float is rounded on its
        shortest round-trip decimal representation.
    dp : int, default 0
        Number of decimals.

    Returns
    -------
    Decimal
        The rounded value, quantized to ``dp`` decimals.

    Examples
    --------
    >>> str(round_half_up(Fraction(30 * 100, 96), 1))
    '31.3'
    >>> str(round_half_up(2.5))
    '3'
    """
    return _to_decimal(x).quantize(_quantum(dp), rounding=ROUND_HALF_UP)


def pct_half_up(n: int, denominator: int, dp: int = 1) -> Decimal:
    """Percentage ``n / denominator x 100`` rounded half-up on the exact fraction.

    Parameters
    ----------
    n : int
        Numerator (count).
    denominator : int
        Denominator, > 0.
    dp : int, default 1
        Decimals.

    Returns
    -------
    Decimal

    Raises
    ------
    ValueError
        If ``denominator`` is not positive or ``n`` is negative or non-integer.

    Examples
    --------
    >>> [str(pct_half_up(k, 96)) for k in (30, 6, 9, 90)]
    ['31.3', '6.3', '9.4', '93.8']
    """
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(denominator, float) and denominator.is_integer():
        denominator = int(denominator)
    if not isinstance(n, Integral) or not isinstance(denominator, Integral):
        raise ValueError(f"pct_half_up needs integer counts, got {n!r}/{denominator!r}")
    if denominator <= 0:
        raise ValueError(f"denominator must be > 0, got {denominator}")
    if n < 0:
        raise ValueError(f"count must be >= 0, got {n}")
    return round_half_up(Fraction(int(n) * 100, int(denominator)), dp)


def decimals_of(printed: str) -> int:
    """Number of decimals in a printed number such as ``"3.13"`` or ``"152,084"``."""
    s = str(printed).replace(",", "").strip()
    return len(s.split(".", 1)[1]) if "." in s else 0


def fmt_number(x: Real | Decimal | Fraction, dp: int = 0, thousands: bool = False) -> str:
    """Format a number half-up at ``dp`` decimals, optionally with thousands commas.

    Parameters
    ----------
    x : real
        The value. ``NaN``/``None`` give an empty string.
    dp : int, default 0
        Decimals.
    thousands : bool, default False
        Insert ``,`` thousands separators (costs: ``152,084``).

    Returns
    -------
    str
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    d = round_half_up(x, dp)
    if d == 0:
        d = abs(d)  # never print "-0.0"
    return f"{d:,.{dp}f}" if thousands else f"{d:.{dp}f}"


def fmt_n_pct(n: int, denominator: int, dp: int = 1) -> str:
    """``"n (pct)"`` with a half-up percentage, e.g. ``fmt_n_pct(30, 96) == "30 (31.3)"``."""
    return f"{int(n)} ({pct_half_up(n, denominator, dp)})"


def fmt_mean_sd(mean: float, sd: float, dp: int = 0, thousands: bool = False) -> str:
    """``"mean ± SD"`` at ``dp`` decimals (half-up), e.g. ``"62 ± 10"``.

    Parameters
    ----------
    mean, sd : float
        Mean and standard deviation (compute the SD with ``ddof=1``).
    dp : int, default 0
        Display precision (the paper's: age 0, BMI 1, surgery hours 2).
    thousands : bool, default False
        Thousands separators (costs).

    Returns
    -------
    str
    """
    return f"{fmt_number(mean, dp, thousands)} {PLUS_MINUS} {fmt_number(sd, dp, thousands)}"


def fmt_median_iqr(median: float, q1: float, q3: float, dp: int = 0) -> str:
    """``"median (Q1–Q3)"`` at ``dp`` decimals (half-up), e.g. ``"24 (12–48)"``."""
    return f"{fmt_number(median, dp)} ({fmt_number(q1, dp)}{EN_DASH}{fmt_number(q3, dp)})"


def fmt_p(p: float, dp: int = 3) -> str:
    """Display a p-value: ``"<0.001"`` below 0.001, otherwise ``dp`` decimals (half-up).

    Parameters
    ----------
    p : float
        The p-value in [0, 1]. ``NaN`` gives an empty string.
    dp : int, default 3

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``p`` is outside [0, 1].
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    p = float(p)
    if p < 0 or p > 1:
        raise ValueError(f"p-value must lie in [0, 1], got {p}")
    threshold = 10.0 ** (-dp)
    if p < threshold:
        return f"<{threshold:.{dp}f}"
    return fmt_number(p, dp)


def _clean_values(x: Iterable[float] | pd.Series | np.ndarray) -> np.ndarray:
    if not isinstance(x, pd.Series):
        x = pd.Series(x if isinstance(x, (np.ndarray, list, tuple)) else list(x))
    arr = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
    return arr[~np.isnan(arr)]


def spss_quantile(x: Iterable[float], q: float | Iterable[float]) -> float | np.ndarray:
    """SPSS EXAMINE HAVERAGE quantile(s) (Hyndman-Fan type 6).

    The position of quantile ``q`` is ``(n + 1) q`` (1-based) with linear
    interpolation between order statistics, clamped to the sample minimum and
    maximum; identical to ``numpy.percentile(x, 100 q, method="weibull")``.

    Parameters
    ----------
    x : iterable of float
        The sample; ``NaN`` values are dropped.
    q : float or iterable of float
        Probabilities in [0, 1].

    Returns
    -------
    float or ndarray

    Raises
    ------
    ValueError
        If the sample is empty or ``q`` is outside [0, 1].
    """
    arr = _clean_values(x)
    if arr.size == 0:
        raise ValueError("spss_quantile: empty sample")
    qa = np.asarray(q, dtype=float)
    if np.any((qa < 0) | (qa > 1)):
        raise ValueError(f"quantile probabilities must lie in [0, 1], got {q!r}")
    out = np.percentile(arr, qa * 100.0, method="weibull")
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Quartiles:
    """Median and quartiles of one sample under two definitions.

    Attributes
    ----------
    n : int
        Non-missing sample size.
    median, q1, q3 : float
        SPSS HAVERAGE (type 6, ``method="weibull"``): the primary values.
    median_type7, q1_type7, q3_type7 : float
        numpy/pandas/tableone default (type 7, ``method="linear"``).
    minimum, maximum : float
        Sample range.
    """

    n: int
    median: float
    q1: float
    q3: float
    median_type7: float
    q1_type7: float
    q3_type7: float
    minimum: float
    maximum: float

    @property
    def types_agree(self) -> bool:
        """True when type 6 and type 7 give the same three values (to 1e-9)."""
        a = np.array([self.median, self.q1, self.q3])
        b = np.array([self.median_type7, self.q1_type7, self.q3_type7])
        return bool(np.allclose(a, b, rtol=0, atol=1e-9))


def quartiles(x: Iterable[float]) -> Quartiles:
    """Median and IQR by SPSS HAVERAGE (type 6) with type 7 alongside.

    Parameters
    ----------
    x : iterable of float
        The sample; ``NaN`` values are dropped.

    Returns
    -------
    Quartiles

    Raises
    ------
    ValueError
        If the sample is empty.
    """
    arr = _clean_values(x)
    if arr.size == 0:
        raise ValueError("quartiles: empty sample")
    q6 = np.percentile(arr, [50, 25, 75], method="weibull")
    q7 = np.percentile(arr, [50, 25, 75], method="linear")
    return Quartiles(
        n=int(arr.size),
        median=float(q6[0]), q1=float(q6[1]), q3=float(q6[2]),
        median_type7=float(q7[0]), q1_type7=float(q7[1]), q3_type7=float(q7[2]),
        minimum=float(arr.min()), maximum=float(arr.max()),
    )


# ---------------------------------------------------------------------------------------------
# Input checks and coercions shared by the analysis modules (kept here so that the package
# has no private helper module; none of these formats anything).
# ---------------------------------------------------------------------------------------------

_TRUE = {"true", "t", "yes", "y", "1", "是"}
_FALSE = {"false", "f", "no", "n", "0", "否"}


def require_columns(df: object, columns: Iterable[str], where: str) -> pd.DataFrame:
    """Check that ``df`` is a non-empty DataFrame holding ``columns``.

    Parameters
    ----------
    df : object
        The candidate input.
    columns : iterable of str
        Required column names.
    where : str
        Name of the calling function, used in the error message.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself (not copied).

    Raises
    ------
    ValueError
        If ``df`` is not a DataFrame, is empty, or lacks a column; the message
        names every missing column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ValueError(f"{where}: missing required column(s) {names}")
    if len(df) == 0:
        raise ValueError(f"{where}: the input frame has no rows")
    return df


def as_bool(series: pd.Series, where: str) -> pd.Series:
    """Coerce a column to pandas' nullable ``boolean`` dtype (a new Series).

    Accepts bools, 0/1 and the strings true/false, yes/no, t/f, y/n, 1/0.

    Raises
    ------
    ValueError
        Naming the column when a value cannot be read as a boolean.
    """
    name = series.name
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")

    def conv(v: object) -> object:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer, float, np.floating)) and float(v) in (0.0, 1.0):
            return bool(v)
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(f"{where}: column {name!r} holds a non-boolean value {v!r}")

    return pd.Series([conv(v) for v in series], index=series.index, name=name, dtype="boolean")


def as_numeric(series: pd.Series, where: str) -> pd.Series:
    """Coerce a column to float (a new Series); missing stays ``NaN``.

    Raises
    ------
    ValueError
        Naming the column when a non-missing value is not numeric.
    """
    out = pd.to_numeric(series, errors="coerce").astype(float)
    bad = out.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise ValueError(f"{where}: column {series.name!r} holds a non-numeric value {example!r}")
    return out


def as_text(series: pd.Series) -> pd.Series:
    """Strip a categorical column's values to trimmed strings, keeping missing values (a new Series)."""
    return series.map(lambda v: v if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))
                      else str(v).strip())
