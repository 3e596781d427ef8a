"""Display conventions: half-up percentages, SPSS quantiles, p-values, mean ± SD."""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from analysis.formatting import (
    fmt_mean_sd,
    fmt_median_iqr,
    fmt_n_pct,
    fmt_number,
    fmt_p,
    pct_half_up,
    quartiles,
    round_half_up,
    spss_quantile,
)


@pytest.mark.parametrize("n, expected, python_default", [
    (30, "31.3", "31.2"),   # immunotherapy, abdomen pain: 31.25 exactly
    (6, "6.3", "6.2"),      # side-effects reason: 6.25 exactly
    (9, "9.4", "9.4"),      # morphine + bupivacaine (IC-01: paper prints 9.5)
    (90, "93.8", "93.8"),   # inadequate control: 93.75 exactly
    (11, "11.5", "11.5"),   # insertion other (IC-02: paper prints 11.4)
    (1, "1.0", "1.0"),
    (96, "100.0", "100.0"),
    (0, "0.0", "0.0"),
])
def test_round_half_up_percentages_of_96(n, expected, python_default):
    assert str(pct_half_up(n, 96)) == expected
    # document why: Python's own formatting rounds half-even on the binary float
    assert f"{n / 96 * 100:.1f}" == python_default


def test_two_decimal_percentages_ic03():
    assert str(pct_half_up(3, 96, 2)) == "3.13"   # 3.125 exactly
    assert str(pct_half_up(1, 96, 2)) == "1.04"


def test_fmt_n_pct():
    assert fmt_n_pct(30, 96) == "30 (31.3)"
    assert fmt_n_pct(54, 72) == "54 (75.0)"


def test_pct_rejects_bad_input():
    with pytest.raises(ValueError, match="denominator"):
        pct_half_up(1, 0)
    with pytest.raises(ValueError, match="count"):
        pct_half_up(-1, 5)
    with pytest.raises(ValueError, match="integer"):
        pct_half_up(1.5, 5)


def test_round_half_up_on_floats_and_fractions():
    assert round_half_up(2.5) == Decimal("3")
    assert round_half_up(0.125, 2) == Decimal("0.13")
    assert round_half_up(2.675, 2) == Decimal("2.68")   # float repr is 2.675; half-even gives 2.67
    assert round_half_up(-2.5) == Decimal("-3")
    assert round_half_up(Fraction(1, 8), 2) == Decimal("0.13")
    assert round_half_up("152,084.5") == Decimal("152085")


def test_fmt_mean_sd_precisions():
    assert fmt_mean_sd(61.98, 9.76, 0) == "62 \u00b1 10"
    assert fmt_mean_sd(20.68, 3.10, 1) == "20.7 \u00b1 3.1"
    assert fmt_mean_sd(2.3449, 0.6751, 2) == "2.34 \u00b1 0.68"
    assert fmt_mean_sd(152084.4, 10395.2, 0, thousands=True) == "152,084 \u00b1 10,395"
    assert fmt_number(-0.04, 1) == "0.0"


def test_fmt_p():
    assert fmt_p(6e-42) == "<0.001"
    assert fmt_p(0.000999) == "<0.001"
    assert fmt_p(0.001) == "0.001"
    assert fmt_p(0.0305) == "0.031"       # half-up
    assert fmt_p(0.5) == "0.500"
    assert fmt_p(float("nan")) == ""
    with pytest.raises(ValueError):
        fmt_p(1.2)


def test_spss_haverage_quantiles_by_hand():
    # n = 10, values 1..10. Type 6 position (n + 1) p: Q1 at 2.75 -> 2 + 0.75 (3 - 2) = 2.75,
    # median at 5.5 -> 5.5, Q3 at 8.25 -> 8.25. Type 7 position 1 + (n - 1) p: Q1 at 3.25,
    # median 5.5, Q3 at 7.75.
    x = np.arange(1, 11)
    assert spss_quantile(x, 0.25) == pytest.approx(2.75)
    assert spss_quantile(x, 0.5) == pytest.approx(5.5)
    assert spss_quantile(x, 0.75) == pytest.approx(8.25)
    q = quartiles(x)
    assert (q.q1, q.median, q.q3) == pytest.approx((2.75, 5.5, 8.25))
    assert (q.q1_type7, q.median_type7, q.q3_type7) == pytest.approx((3.25, 5.5, 7.75))
    assert not q.types_agree


def test_spss_quantile_small_sample_by_hand():
    # n = 5: [3, 1, 4, 1, 5] sorted [1, 1, 3, 4, 5]; Q1 pos 1.5 -> (1 + 1)/2 = 1;
    # median pos 3 -> 3; Q3 pos 4.5 -> (4 + 5)/2 = 4.5. Type 7: Q1 pos 2 -> 1, Q3 pos 4 -> 4.
    q = quartiles([3, 1, 4, 1, 5])
    assert (q.q1, q.median, q.q3) == (1.0, 3.0, 4.5)
    assert (q.q1_type7, q.median_type7, q.q3_type7) == (1.0, 3.0, 4.0)
    # Clamped at the extremes: position (n + 1) * 0.1 = 0.6 < 1 -> minimum
    assert spss_quantile([3, 1, 4, 1, 5], 0.1) == 1.0


def test_pinned_order_statistics_make_types_agree():
    # the generator's pinning for n = 96: x24 = x25, x48 = x49, x72 = x73
    x = np.concatenate([np.linspace(0, 11, 23), [12, 12], np.linspace(13, 23, 22), [24, 24],
                        np.linspace(25, 47, 22), [48, 48], np.linspace(50, 100, 23)])
    assert x.size == 96 and (x[23], x[24], x[47], x[48], x[71], x[72]) == (12, 12, 24, 24, 48, 48)
    q = quartiles(x)
    assert q.types_agree
    assert fmt_median_iqr(q.median, q.q1, q.q3) == "24 (12\u201348)"


def test_quantiles_drop_missing_and_reject_empty():
    assert quartiles([1.0, np.nan, 3.0]).n == 2
    with pytest.raises(ValueError, match="empty"):
        quartiles([np.nan])
    with pytest.raises(ValueError):
        spss_quantile([1, 2], 1.5)
