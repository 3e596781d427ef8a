"""The analysis on the calibrated latent cohort (synth.latent.build_latent, seed 11).

Skipped while synth.latent is not importable. On it, every printed value must be
reproduced except the IC-flagged ones, which must carry their IC id.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
import statsmodels.api as sm
from sksurv.nonparametric import kaplan_meier_estimator
from statsmodels.duration.hazard_regression import PHReg

from analysis.cox import DEFAULT_TERMS, cox_design, cox_model
from analysis.formatting import round_half_up
from analysis.pain import pain_response
from analysis.reproduction import reproduction
from analysis.survival import fit_km, km_summary, survival_sets
from analysis.tables import table1, table2, table3

#: Printed values that cannot be (or need not be) reproduced, and why.
EXPECTED_MISMATCH = {
    ("insertion_other", ""): "IC-02",
    ("idds_drug_morphine_bupivacaine", ""): "IC-01",
    ("ome", "all patients"): "IC-06",
    ("ome_abstract", ""): "IC-05",
    ("idds_init_morphine", "morphine incl. morphine+bupivacaine"): "IC-08",
}


@pytest.fixture(scope="module")
def latent():
    mod = pytest.importorskip("synth.latent", reason="synth.latent not available yet")
    if not hasattr(mod, "build_latent"):
        pytest.skip("synth.latent has no build_latent yet")
    return mod.build_latent(seed=11)


@pytest.fixture(scope="module")
def tables(latent):
    return {"table1": table1(latent), "table2": table2(latent), "table3": table3(latent)}


@pytest.fixture(scope="module")
def summary(latent):
    return km_summary(latent)


def test_latent_shape(latent):
    assert len(latent) == 96
    assert (latent["followup_status"] == "followed").sum() == 72


def test_tables_match_paper_except_ic(tables):
    seen = set()
    for name, t in tables.items():
        printed = t[t["paper_display"] != ""]
        for _, r in printed.iterrows():
            if r["matches_paper"]:
                continue
            key = (r["paper_key"], r["level"] if (r["paper_key"], r["level"]) in EXPECTED_MISMATCH else "")
            assert key in EXPECTED_MISMATCH, f"{name}: {r['variable']} {r['level']}: {r['display']} vs " \
                                             f"{r['paper_display']}"
            ic = EXPECTED_MISMATCH[key]
            assert ic in r["ic_ids"] and ic in r["note"]
            seen.add(key)
        # no row without an IC id fails
        assert printed.loc[printed["ic_ids"] == "", "matches_paper"].all()
    assert seen == {k for k in EXPECTED_MISMATCH if k[0] != "ome_abstract"}


def test_ic_rows_on_latent(tables):
    t1, t2, t3 = tables["table1"], tables["table2"], tables["table3"]
    users = t1[(t1["paper_key"] == "ome") & (t1["level"] == "opioid users")].iloc[0]
    assert users["n"] == 66 and users["display"] == "290 (100\u2013633)" and users["matches_paper"]
    combo = t2[t2["paper_key"] == "idds_drug_morphine_bupivacaine"].iloc[0]
    assert combo["display"] == "9 (9.4)"
    m61 = t2[(t2["paper_key"] == "idds_init_morphine") & (t2["level"] == "morphine")].iloc[0]
    assert m61["n"] == 61 and m61["display"] == "1.07 \u00b1 1.05"
    assert t2[(t2["variable"] == "itt_drug") & t2["level"].str.contains("among")]["denominator"].eq(79).all()
    desc = t3[t3["paper_key"] == "os_descriptive"].iloc[0]
    assert desc["display"] == "3 (2\u20136)" and desc["n"] == 72
    assert t2[t2["paper_key"] == "los_postop"].iloc[0]["matches_paper"]


def test_km_median_and_quartiles(summary):
    r = summary[(summary["analysis_set"] == "followup") & (summary["stratum"] == "overall")].iloc[0]
    assert (r["n"], r["n_events"]) == (72, 56)
    assert str(round_half_up(r["median_months"])) == "3"
    assert str(round_half_up(r["t_s075_months"])) == "2"
    assert str(round_half_up(r["t_s025_months"])) == "6"
    assert r["display"] == "3 (2\u20136)"
    # IC-10: KM quartiles and descriptive quartiles both give 3 (2-6)
    for k in ("desc_median_months", "desc_q1_months", "desc_q3_months"):
        assert r[k] == r[f"{k}_type7"]
    assert [str(round_half_up(r[k])) for k in ("desc_median_months", "desc_q1_months", "desc_q3_months")] \
        == ["3", "2", "6"]
    assert 2.0 < r["median_ci_low"] < r["median_months"] < r["median_ci_high"] < 4.5


def test_four_km_engines_agree_on_latent(latent):
    fu = survival_sets(latent, strata=()).followup
    t, e = fu["time_days"].to_numpy(float), fu["event"].to_numpy(int)
    fit = fit_km(t, e)
    sf = sm.SurvfuncRight(t, e)
    assert np.max(np.abs(np.array([fit.at(x)[0] for x in sf.surv_times]) - sf.surv_prob)) < 1e-12
    assert fit.quantile_days(0.5) == sf.quantile(0.5)
    assert fit.quantile_days(0.75) == sf.quantile(0.25)
    assert fit.quantile_days(0.25) == sf.quantile(0.75)
    assert fit.median_ci_days() == sf.quantile_ci(0.5, method="cloglog")
    res = st.ecdf(st.CensoredData(uncensored=t[e == 1], right=t[e == 0]))
    grid = np.unique(t)
    assert np.max(np.abs(res.sf.evaluate(grid) - np.array([fit.at(x)[0] for x in grid]))) < 1e-12
    times, surv, _ = kaplan_meier_estimator(e.astype(bool), t, conf_type="log-log")
    assert np.max(np.abs(surv - np.array([fit.at(x)[0] for x in times]))) < 1e-12


def test_pain_on_latent(latent):
    p = pain_response(latent).set_index("test")
    assert p.loc["paired_t", "n"] == 72
    assert p.loc["paired_t", "p_value"] < 0.001 and p.loc["paired_t", "p_display"] == "<0.001"
    assert p.loc["wilcoxon", "p_value"] < 0.001
    assert str(round_half_up(p.loc["paired_t", "before_mean"], 1)) == "7.5"
    assert str(round_half_up(p.loc["paired_t", "after_mean"], 1)) == "3.0"


def test_cox_on_latent_matches_statsmodels(latent):
    res = cox_model(latent)
    assert (res.n, res.n_events) == (72, 56)
    X = cox_design(latent)
    terms = list(DEFAULT_TERMS)
    ref = PHReg(X["time_months"].to_numpy(), X[terms].to_numpy(), status=X["event"].to_numpy(),
                ties="efron").fit()
    np.testing.assert_allclose(res.coefficients["coef"].to_numpy(), ref.params, atol=5e-5)
    np.testing.assert_allclose(res.coefficients["se"].to_numpy(), ref.bse, atol=5e-5)


def test_reproduction_on_latent(latent, tables, summary):
    rep = reproduction(tables, pain_response(latent), summary)
    assert rep.loc[rep["ic_ids"] == "", "matches"].all(), rep[(rep["ic_ids"] == "") & ~rep["matches"]]
    bad = rep[~rep["matches"]]
    assert set(bad["paper_key"]) == {k[0] for k in EXPECTED_MISMATCH}
    for ids, note in zip(bad["ic_ids"], bad["note"], strict=True):
        assert ids and all(i in note for i in ids.split(","))
    km = rep[rep["paper_key"] == "os_km"].iloc[0]
    assert km["matches"] and km["pipeline_value"] == "3 (2\u20136)"
    assert rep[rep["paper_key"] == "nrs_p"].iloc[0]["matches"]
