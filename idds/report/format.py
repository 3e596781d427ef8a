"""Number display rules shared by the reports."""

from __future__ import annotations


def count(n: int | None) -> str:
    return "–" if n is None else f"{int(n):,}"


def ratio(failed: int | None, tested: int | None) -> str:
    """'3 / 1,204,512' — never a bare percentage that could read as zero."""
    if failed is None or tested is None:
        return "–"
    return f"{int(failed):,} / {int(tested):,}"


def percent(failed: int | None, tested: int | None) -> str:
    """A percentage that never shows a non-zero count as 0.00 %."""
    if not tested or failed is None:
        return "–"
    pct = 100.0 * failed / tested
    if failed == 0:
        return "0 %"
    if pct < 0.01:
        return "< 0.01 %"
    return f"{pct:.2f} %"
