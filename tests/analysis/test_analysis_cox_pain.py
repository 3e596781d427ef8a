"""Cox model vs statsmodels PHReg (Efron); paired NRS tests vs statsmodels / by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.stats.weightstats import DescrStatsW

from analysis.cox import DEFAULT_TERMS, CoxResult, cox_design, cox_model
from analysis.pain import PAIN_RESPONSE_COLUMNS, pain_response

# ------------------------------------------------------------------------------------------
# Cox
# ------------------------------------------------------------------------------------------

def test_cox_matches_statsmodels_efron_to_4dp(cohort):
    res = cox_model(cohort)
    assert isinstance(res, CoxResult)
    X = cox_design(cohort)
    terms = list(DEFAULT_TERMS)
    ref = PHReg(X["time_months"].to_numpy(), X[terms].to_numpy(), status=X["event"].to_numpy(),
                ties="efron").fit()
    c = res.coefficients.set_index("term").loc[terms]
    np.testing.assert_allclose(c["coef"].to_numpy(), ref.params, atol=5e-5)
    np.testing.assert_allclose(c["se"].to_numpy(), ref.bse, atol=5e-5)
    np.testing.assert_allclose(c["p_value"].to_numpy(), ref.pvalues, atol=5e-5)
    ci = np.exp(ref.conf_int())
    np.testing.assert_allclose(c["hr_ci_low"].to_numpy(), ci[:, 0], atol=5e-5)
    np.testing.assert_allclose(c["hr_ci_high"].to_numpy(), ci[:, 1], atol=5e-5)
    assert res.log_likelihood == pytest.approx(ref.llf, abs=5e-5)
    # statsmodels' default (Breslow) differs: the ties option really matters here
    bres = PHReg(X["time_months"].to_numpy(), X[terms].to_numpy(), status=X["event"].to_numpy()).fit()
    assert res.n == len(X) and res.n_events == int(X["event"].sum())
    assert 0.5 < res.concordance < 1
    assert np.all(np.isfinite(bres.params))


def test_cox_concordance_matches_lifelines_utility(cohort):
    from lifelines.utils import concordance_index
    res = cox_model(cohort)
    X = res.design
    risk = X[list(res.terms)].to_numpy() @ res.coefficients["coef"].to_numpy()
    assert res.concordance == pytest.approx(concordance_index(X["time_months"], -risk, X["event"]))


def test_cox_ph_test_frame(cohort):
    res = cox_model(cohort)
    ph = res.ph_test
    assert list(ph.columns) == ["term", "transform", "test_statistic", "p_value", "p_display", "violated"]
    assert set(ph["transform"]) == {"rank", "km"}
    assert set(ph["term"]) == set(DEFAULT_TERMS)
    assert ph["p_value"].between(0, 1).all()


def test_cox_validation(cohort):
    with pytest.raises(ValueError, match="age_years"):
        cox_model(cohort.drop(columns=["age_years"]))
    with pytest.raises(ValueError, match="unknown term"):
        cox_model(cohort, terms=["nonsense"])
    before = cohort.copy(deep=True)
    cox_model(cohort)
    pd.testing.assert_frame_equal(cohort, before)


# ------------------------------------------------------------------------------------------
# pain response
# ------------------------------------------------------------------------------------------

def _nrs_frame(pre, post, extra_lost=2):
    n = len(pre)
    return pd.DataFrame({
        "followup_status": ["followed"] * n + ["lost_or_refused"] * extra_lost,
        "baseline_nrs": list(pre) + [9] * extra_lost,
        "followup_nrs": list(post) + [np.nan] * extra_lost,
    })


def test_paired_t_matches_descrstatsw():
    rng = np.random.default_rng(7)
    pre = rng.choice([6, 7, 8, 9], 72)
    post = np.clip(pre - rng.integers(1, 7, 72), 0, 10)
    out = pain_response(_nrs_frame(pre, post))
    assert list(out.columns) == list(PAIN_RESPONSE_COLUMNS)
    t = out.set_index("test").loc["paired_t"]
    d = DescrStatsW((pre - post).astype(float))
    tstat, p, dof = d.ttest_mean(0)
    assert t["n"] == 72 and t["df"] == dof == 71
    assert t["statistic"] == pytest.approx(tstat, rel=1e-12)
    assert t["p_value"] == pytest.approx(p, rel=1e-9)
    lo, hi = d.tconfint_mean(0.05)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert t["mean_difference"] == pytest.approx(d.mean)
    assert t["effect_size"] == pytest.approx(d.mean / d.std_mean / np.sqrt(72))
    assert t["before_sd"] == pytest.approx(np.std(pre, ddof=1))


def test_paired_t_on_paper_marginals_is_below_0001():
    # spec §3.4 count vectors: baseline 7.50 ± 0.805, follow-up 3.00 ± 1.113 (n = 72)
    pre = np.repeat([6, 7, 8, 9], [7, 29, 29, 7])
    post = np.repeat([0, 1, 2, 3, 4, 5], [1, 5, 17, 25, 18, 6])
    rng = np.random.default_rng(1)
    out = pain_response(_nrs_frame(pre, rng.permutation(post))).set_index("test")
    assert out.loc["paired_t", "before_mean"] == pytest.approx(7.5)
    assert out.loc["paired_t", "after_mean"] == pytest.approx(3.0)
    assert out.loc["paired_t", "p_value"] < 1e-20
    assert out.loc["paired_t", "p_display"] == "<0.001"
    assert out.loc["wilcoxon", "p_value"] < 0.001


def test_wilcoxon_by_hand_normal_approximation():
    # differences before - after: 3, 3, -1, 0, 2, 2, 2
    # zero dropped (wilcox): |d| = 3,3,1,2,2,2 -> ranks: 1 -> 1; 2,2,2 -> 3; 3,3 -> 5.5
    # W+ = 5.5 + 5.5 + 3*3 = 20, W- = 1; n = 6; E = n(n+1)/4 = 10.5
    # Var = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 = 22.75 - (24 + 6)/48 = 22.125
    # z = (1 - 10.5)/sqrt(22.125) = -2.01968; p = 2 Phi(-2.01968) = 0.043418
    pre = [8, 7, 5, 6, 9, 8, 7]
    post = [5, 4, 6, 6, 7, 6, 5]
    out = pain_response(_nrs_frame(pre, post)).set_index("test")
    w = out.loc["wilcoxon"]
    assert w["statistic"] == 1
    assert w["n_zero_differences"] == 1
    z = (1 - 10.5) / np.sqrt(22.125)
    assert abs(w["z"]) == pytest.approx(abs(z), rel=1e-9)
    assert w["p_value"] == pytest.approx(2 * st.norm.cdf(z), rel=1e-9)


def test_responder_shares():
    pre = [8, 8, 10, 6]
    post = [4, 6, 7, 7]     # reductions 50 %, 25 %, 30 %, -16.7 %
    out = pain_response(_nrs_frame(pre, post)).iloc[0]
    assert out["n_improved"] == 3
    assert out["n_reduction_ge30"] == 2
    assert out["n_reduction_ge50"] == 1
    assert out["pct_reduction_ge50"] == pytest.approx(25.0)


def test_pain_validation_and_no_mutation():
    df = _nrs_frame([8, 7, 9], [3, 3, 2])
    with pytest.raises(ValueError, match="followup_nrs"):
        pain_response(df.drop(columns=["followup_nrs"]))
    bad = df.copy()
    bad.loc[0, "baseline_nrs"] = 11
    with pytest.raises(ValueError, match="outside 0-10"):
        pain_response(bad)
    with pytest.raises(ValueError, match="fewer than two"):
        pain_response(df.iloc[[0, 3, 4]])
    before = df.copy(deep=True)
    pain_response(df)
    pd.testing.assert_frame_equal(df, before)


def test_degenerate_equal_differences_give_nan_t():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = pain_response(_nrs_frame([8, 7, 9], [3, 2, 4])).set_index("test")
    assert np.isnan(out.loc["paired_t", "p_value"])
    assert out.loc["paired_t", "mean_difference"] == 5
    assert "undefined" in out.loc["paired_t", "note"]
