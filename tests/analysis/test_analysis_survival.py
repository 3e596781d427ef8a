"""Kaplan-Meier, quantiles, median CI and log-rank against independent implementations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import statsmodels.api as sm
from sksurv.nonparametric import kaplan_meier_estimator
from statsmodels.duration.survfunc import survdiff

from analysis.survival import (
    DEFAULT_STRATA,
    SURVIVAL_KM_COLUMNS,
    SURVIVAL_SUMMARY_COLUMNS,
    descriptive_times,
    fit_km,
    km_curves,
    km_quantile,
    km_summary,
    logrank_tests,
    survival_sets,
)

Z975 = st.norm.ppf(0.975)


def _random_survival(seed: int, n: int = 60):
    """Continuous-ish times with random censoring, away from exact quantile landings."""
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(100, n)) + 1
    c = np.round(rng.uniform(20, 300, n))
    e = (t <= c).astype(int)
    return np.minimum(t, c), e


def _assert_no_exact_landing(fit):
    # the oracles legitimately differ when S lands exactly on 0.75 / 0.5 / 0.25 (spec §6.3)
    for p in (0.75, 0.5, 0.25):
        assert np.min(np.abs(fit.survival - p)) > 1e-9


# ------------------------------------------------------------------------------------------
# hand-computed five-patient KM
# ------------------------------------------------------------------------------------------

def test_five_patient_km_by_hand():
    # times 2, 3, 3+, 5, 8+ (+ = censored)
    # t=2: at risk 5, 1 death  -> S = 4/5             = 0.8
    # t=3: at risk 4, 1 death (the censoring at 3 is still at risk) -> S = 0.8 * 3/4 = 0.6
    # t=5: at risk 2, 1 death  -> S = 0.6 * 1/2       = 0.3
    # t=8: at risk 1, censored -> S stays 0.3
    # Greenwood sums  sum d/(n(n-d)): 1/20 = 0.05; + 1/12 = 0.13333; + 1/2 = 0.63333
    # Var S = S^2 * sum: 0.64*0.05 = 0.032; 0.36*0.13333 = 0.048; 0.09*0.63333 = 0.057
    # log-log band: S^exp(+-1.96 sqrt(sum / (log S)^2)), e.g. t=2: sqrt(0.05)/|log 0.8| = 1.00208,
    # 0.8^exp(1.96*1.00208) = 0.8^7.1163 = 0.20381 and 0.8^exp(-1.96*1.00208) = 0.96918.
    fit = fit_km([2, 3, 3, 5, 8], [1, 1, 0, 1, 0])
    assert fit.times_days.tolist() == [0, 2, 3, 5, 8]
    assert fit.survival == pytest.approx([1, 0.8, 0.6, 0.3, 0.3], abs=1e-12)
    assert fit.ci_low[1:4] == pytest.approx([0.20380926, 0.12573018, 0.01230153], abs=1e-7)
    assert fit.ci_high[1:4] == pytest.approx([0.96917979, 0.88175641, 0.71921802], abs=1e-7)
    for i, s, g in ((1, 0.8, 0.05), (2, 0.6, 0.05 + 1 / 12), (3, 0.3, 0.05 + 1 / 12 + 0.5)):
        sd = math.sqrt(g) / abs(math.log(s))
        assert fit.ci_low[i] == pytest.approx(s ** math.exp(Z975 * sd), rel=1e-9)
        assert fit.ci_high[i] == pytest.approx(s ** math.exp(-Z975 * sd), rel=1e-9)
    # quantiles: first time with S <= p
    assert fit.quantile_days(0.75) == 3      # S(2) = 0.8 > 0.75, S(3) = 0.6
    assert fit.quantile_days(0.5) == 5
    assert math.isinf(fit.quantile_days(0.25))   # never below 0.3
    # median CI: lower band reaches 0.5 at t=2 (0.204); upper band never (0.719 at the end)
    lo, hi = fit.median_ci_days()
    assert lo == 2 and math.isinf(hi)
    # numbers at risk / events / censored
    et = fit.kmf.event_table
    assert et["at_risk"].tolist() == [5, 5, 4, 2, 1]
    assert et["observed"].tolist() == [0, 1, 1, 1, 0]
    assert et["censored"].tolist() == [0, 0, 1, 0, 1]
    # S at fixed times; NaN past the last observation
    assert fit.at(4)[0] == pytest.approx(0.6)
    assert math.isnan(fit.at(9)[0])


def test_quantile_exact_landing_uses_tolerance():
    # 4 deaths in 8 patients and no censoring: S = 0.5 exactly after the 4th death.
    t = [1, 2, 3, 4, 5, 6, 7, 8]
    fit = fit_km(t, [1] * 8)
    assert fit.quantile_days(0.5) == 4
    assert km_quantile(np.array([0, 1, 2]), np.array([1, 0.7500000000000001, 0.5]), 0.75) == 1


# ------------------------------------------------------------------------------------------
# independent KM engines
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_km_step_function_and_quantiles_match_statsmodels(seed):
    t, e = _random_survival(seed)
    fit = fit_km(t, e)
    _assert_no_exact_landing(fit)
    sf = sm.SurvfuncRight(t, e)
    ours = np.array([fit.at(x)[0] for x in sf.surv_times])
    assert np.max(np.abs(ours - sf.surv_prob)) < 1e-12
    # statsmodels' quantile(p) is the CDF convention: p=0.25 is where S falls below 0.75
    assert fit.quantile_days(0.5) == sf.quantile(0.5)
    assert fit.quantile_days(0.75) == sf.quantile(0.25)
    assert fit.quantile_days(0.25) == sf.quantile(0.75)
    # median CI: bands crossing 0.5 == Brookmeyer-Crowley inversion on the cloglog scale
    lo, hi = fit.median_ci_days()
    slo, shi = sf.quantile_ci(0.5, method="cloglog")
    assert (lo, hi) == (slo, shi)


@pytest.mark.parametrize("seed", [0, 4])
def test_km_matches_scipy_ecdf(seed):
    t, e = _random_survival(seed)
    fit = fit_km(t, e)
    res = st.ecdf(st.CensoredData(uncensored=t[e == 1], right=t[e == 0]))
    grid = np.unique(t)
    ours = np.array([fit.at(x) for x in grid])
    assert np.max(np.abs(res.sf.evaluate(grid) - ours[:, 0])) < 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # undefined band after S = 0
        ci = res.sf.confidence_interval(0.95, method="log-log")
    low, high = ci.low.evaluate(grid), ci.high.evaluate(grid)
    ok = ~np.isnan(low) & ~np.isnan(ours[:, 1])
    assert np.max(np.abs(low[ok] - ours[ok, 1])) < 1e-12
    assert np.max(np.abs(high[ok] - ours[ok, 2])) < 1e-12


@pytest.mark.parametrize("seed", [0, 5])
def test_km_matches_sksurv(seed):
    t, e = _random_survival(seed)
    fit = fit_km(t, e)
    times, surv, ci = kaplan_meier_estimator(e.astype(bool), t, conf_type="log-log")
    ours = np.array([fit.at(x) for x in times])
    assert np.max(np.abs(surv - ours[:, 0])) < 1e-12
    assert np.max(np.abs(ci[0] - ours[:, 1])) < 1e-12
    assert np.max(np.abs(ci[1] - ours[:, 2])) < 1e-12


# ------------------------------------------------------------------------------------------
# analysis sets, curves, summary
# ------------------------------------------------------------------------------------------

def test_survival_sets(cohort):
    sets = survival_sets(cohort)
    fu = sets.followup
    assert (fu["followup_status"] == "followed").all()
    assert len(fu) == int((cohort["followup_status"] == "followed").sum())
    sens = sets.sensitivity
    assert len(sens) == len(cohort)
    # periop death: event at day 1
    pd_row = sens.loc[cohort["followup_status"] == "periop_death"].iloc[0]
    assert pd_row["event"] == 1 and pd_row["time_days"] == 1
    # explant censored at explant date
    ex = cohort.loc[cohort["followup_status"] == "explanted"].iloc[0]
    ex_days = (pd.Timestamp(ex["explant_date"]) - pd.Timestamp(ex["implant_date"])).days
    ex_row = sens.loc[cohort["followup_status"] == "explanted"].iloc[0]
    assert ex_row["event"] == 0 and ex_row["time_days"] == ex_days
    assert np.allclose(sens["time_months"], sens["time_days"] / 30.4375)


def test_km_curves_long_form(cohort):
    km = km_curves(cohort)
    assert list(km.columns) == list(SURVIVAL_KM_COLUMNS)
    assert set(km["analysis_set"]) == {"followup", "sensitivity"}
    strata = set(km["stratum"])
    assert "overall" in strata and "cancer_group=GI" in strata and "adl_lt60=true" in strata
    assert {s.split("=")[0] for s in strata if s != "overall"} == set(DEFAULT_STRATA)
    ov = km[(km["analysis_set"] == "followup") & (km["stratum"] == "overall")]
    assert ov["time_months"].iloc[0] == 0 and ov["survival"].iloc[0] == 1
    assert (np.diff(ov["survival"]) <= 1e-15).all()
    fu = survival_sets(cohort).followup
    assert ov["n_events"].sum() == fu["event"].sum()
    assert ov["n_events"].sum() + ov["n_censored"].sum() == len(fu)
    # independent re-computation of the curve with statsmodels
    sf = sm.SurvfuncRight(fu["time_days"].to_numpy(), fu["event"].to_numpy())
    at_events = ov.set_index("time_days").loc[sf.surv_times, "survival"].to_numpy()
    assert np.max(np.abs(at_events - sf.surv_prob)) < 1e-12


def test_km_summary_columns_and_oracles(cohort):
    s = km_summary(cohort)
    assert list(s.columns) == list(SURVIVAL_SUMMARY_COLUMNS)
    row = s[(s["analysis_set"] == "followup") & (s["stratum"] == "overall")].iloc[0]
    fu = survival_sets(cohort).followup
    t, e = fu["time_days"].to_numpy(), fu["event"].to_numpy()
    sf = sm.SurvfuncRight(t, e)
    assert row["n"] == len(fu) and row["n_events"] == e.sum()
    assert row["median_months"] * 30.4375 == pytest.approx(sf.quantile(0.5))
    assert row["t_s075_months"] * 30.4375 == pytest.approx(sf.quantile(0.25))
    lo, hi = sf.quantile_ci(0.5, method="cloglog")
    assert row["median_ci_low"] * 30.4375 == pytest.approx(lo)
    assert row["median_ci_high"] * 30.4375 == pytest.approx(hi)
    # reverse KM median potential follow-up, computed independently with statsmodels
    rev = sm.SurvfuncRight(t, 1 - e)
    assert row["median_followup_months"] * 30.4375 == pytest.approx(rev.quantile(0.5))
    # descriptive Table-3 quantiles use SPSS HAVERAGE
    assert row["desc_median_months"] == pytest.approx(
        np.percentile(fu["time_months"], 50, method="weibull"))
    # log-rank p on stratified rows
    strat = s[(s["analysis_set"] == "followup") & (s["variable"] == "adl_lt60")]
    assert strat["logrank_p"].nunique() == 1 and strat["logrank_p"].notna().all()


def test_logrank_matches_statsmodels_survdiff(cohort):
    lr = logrank_tests(cohort)
    fu = survival_sets(cohort).followup
    for var in ("adl_lt60", "cancer_group", "implant_year"):
        g = fu[f"stratum_{var}"].astype(str).to_numpy()
        chi2, p = survdiff(fu["time_days"].to_numpy(), fu["event"].to_numpy(), g)
        row = lr[(lr["analysis_set"] == "followup") & (lr["variable"] == var)].iloc[0]
        assert row["test_statistic"] == pytest.approx(chi2, rel=1e-8)
        assert row["p_value"] == pytest.approx(p, rel=1e-8)
        assert row["degrees_freedom"] == len(set(g)) - 1


def test_descriptive_times_label(cohort):
    d = descriptive_times(cohort)
    assert set(d["analysis_set"]) == {"followup", "sensitivity"}
    assert (d["label"] == "Months from implant to death/last visit").all()
    assert d["note"].str.contains("IC-10").all()


def test_survival_input_validation(cohort):
    with pytest.raises(ValueError, match="os_event"):
        survival_sets(cohort.drop(columns=["os_event"]))
    with pytest.raises(ValueError, match="explant_date"):
        km_summary(cohort.drop(columns=["explant_date"]))
    with pytest.raises(ValueError, match="adl_barthel"):
        km_curves(cohort.drop(columns=["adl_barthel"]))
    bad = cohort.copy()
    bad.loc[bad.index[3], "os_event"] = 2
    with pytest.raises(ValueError, match="0/1"):
        km_summary(bad)
    with pytest.raises(ValueError, match="DataFrame"):
        km_curves([1, 2, 3])
    with pytest.raises(ValueError, match="unknown stratum"):
        km_curves(cohort, strata=["shoe_size"])


def test_survival_functions_do_not_mutate(cohort):
    before = cohort.copy(deep=True)
    survival_sets(cohort)
    km_curves(cohort)
    km_summary(cohort)
    logrank_tests(cohort)
    descriptive_times(cohort)
    pd.testing.assert_frame_equal(cohort, before)


def test_no_approximation_warning_leaks(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km_summary(cohort, strata=())
