"""Number display rules shared by the reports."""

from __future__ import annotations


def count(n: int | None) -> str:
    return "–" if n is None else f"{int(n):,}"


def ratio(failed: int | None, tested: int | None) -> str:
    """'3 / 1,204,512' — never a bare percentage that could read as zero."""
    if failed is None or tested is None:
        return "–"
    return f"{int(failed):,} / {int(tested):,}"


def violations(failed: int | None, tested: int | None) -> str:
    """Like :func:`ratio`, but keeps the violation count when rows tested is unknown: '3 / –'."""
    if failed is None:
        return "–"
    if tested is None:
        return f"{int(failed):,} / –"
    return ratio(failed, tested)


def percent(failed: int | None, tested: int | None) -> str:
    """A percentage that never shows a non-zero count as 0.00 % (nor a partial one as 100.00 %)."""
    if not tested or failed is None:
        return "–"
    pct = 100.0 * failed / tested
    if failed == 0:
        return "0 %"
    if pct < 0.01:
        return "< 0.01 %"
    if failed < tested and pct > 99.99:
        return "> 99.99 %"
    return f"{pct:.2f} %"


def short_hash(sha: str | None, n: int = 12) -> str:
    """The first ``n`` hex digits of a hash, with an ellipsis; the full one goes in a title."""
    if not sha:
        return "–"
    return sha if len(sha) <= n else sha[:n] + "…"


def threshold_pct(pct: float | None) -> str:
    """A catalogue threshold in percent, without trailing zeros: 0.5 -> '0.5 %'."""
    return "–" if pct is None else f"{pct:g} %"
