"""Stage A latent truth table: every Appendix A target, the joint constraints, the
date arithmetic, determinism, and agreement of four Kaplan-Meier engines.

Tolerance policy (study reference §2.1): counts exact; percentages recomputed with
round-half-up on the exact fraction; means/SDs within 0.25 * 10**-dp of the target;
medians/IQRs equal under SPSS (weibull), type 7 and Tukey hinges and rounding to the
target; KM quartiles rounding to the target with all engines agreeing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from synth.latent import TARGETS, achieved_stats, build_latent

CUTOFF = pd.Timestamp("2024-03-20")
MONTH = 30.4375
N = 96

COHORT_COLUMNS = [
    "patient_id", "implant_id", "implant_date", "implant_year", "admission_date",
    "discharge_date", "age_years", "sex", "insurance_type", "height_cm", "weight_kg", "bmi",
    "adl_barthel", "pressure_sore", "skin_compromising_line", "arrival_wheelchair_or_cart",
    "cancer_site", "cancer_dx_date", "cancer_duration_months", "metastasis_any", "met_bone",
    "met_liver", "met_lung", "met_other", "pain_onset_date", "pain_duration_months",
    "pain_preceded_cancer", "pain_site_lumbosacral", "pain_site_abdomen", "pain_site_back",
    "pain_site_lower_limb", "pain_site_perineum", "pain_site_chest", "pain_site_head_neck",
    "pain_site_upper_limb", "prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy",
    "prior_pain_intervention", "baseline_ome_mg_per_day", "systemic_opioid_user",
    "n_adjuvant_drugs", "baseline_nrs", "implant_reason", "itt_count", "itt_drug", "itt_dose_mg",
    "surgery_duration_hours", "insertion_level", "insertion_level_group", "catheter_tip_level",
    "tip_group", "catheter_cephalad", "device_model", "idds_drug", "initial_daily_dose_mg",
    "los_days", "postop_los_days", "total_charge_cny", "self_pay_cny", "comp_pdph", "comp_fever",
    "comp_urinary_retention_constipation", "comp_infection", "comp_poor_wound_healing",
    "in_hospital_death", "explanted", "explant_date", "followup_status", "followup_nrs",
    "satisfied", "systemic_opioid_after", "death_date", "last_contact_date", "os_days",
    "os_event", "os_months",
]
EXTRA_COLUMNS = [
    "admission_id", "birth_date", "cancer_icd10", "met_other_sites", "respondent",
    "dissatisfaction_reason", "vital_status_at_cutoff", "implant_start_time", "implant_end_time",
]
DATE_COLUMNS = ["implant_date", "admission_date", "discharge_date", "cancer_dx_date",
                "pain_onset_date", "explant_date", "death_date", "last_contact_date", "birth_date"]
BOOL_COLUMNS = [c for c in COHORT_COLUMNS if c.startswith(("pain_site_", "prior_", "comp_", "met_"))
                and c != "met_other_sites"] + [
    "pressure_sore", "skin_compromising_line", "arrival_wheelchair_or_cart", "metastasis_any",
    "pain_preceded_cancer", "systemic_opioid_user", "catheter_cephalad", "in_hospital_death",
    "explanted"]
INT_COLUMNS = ["implant_year", "age_years", "adl_barthel", "n_adjuvant_drugs", "baseline_nrs",
               "itt_count", "los_days", "postop_los_days", "os_days", "os_event"]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return build_latent()


@pytest.fixture(scope="module")
def stats(df) -> dict:
    return achieved_stats(df)


@pytest.fixture(scope="module")
def followed(df) -> pd.DataFrame:
    return df[df["followup_status"] == "followed"]


def half_up(value: Fraction | float, dp: int) -> Decimal:
    """Round an exact fraction (or a float's exact value) half-up at ``dp`` decimals."""
    fr = Fraction(value)
    with localcontext() as ctx:
        ctx.prec = 60
        d = Decimal(fr.numerator) / Decimal(fr.denominator)
    return d.quantize(Decimal(1).scaleb(-dp), rounding=ROUND_HALF_UP)


def pct(n: int, denominator: int, dp: int = 1) -> Decimal:
    return half_up(Fraction(n * 100, denominator), dp)


def level_rank(level: str) -> int:
    return {"C": 0, "T": 7, "L": 19, "S": 24}[level[0]] + int(level[1:])


# ---------------------------------------------------------------------------
# Shape, types, determinism, speed
# ---------------------------------------------------------------------------
def test_columns_and_types(df):
    assert len(df) == N
    assert not set(COHORT_COLUMNS + EXTRA_COLUMNS) - set(df.columns)
    assert df["patient_id"].str.fullmatch(r"\d{10}").all() and df["patient_id"].is_unique
    assert df["admission_id"].is_unique and df["implant_id"].is_unique
    for col in DATE_COLUMNS + ["implant_start_time", "implant_end_time"]:
        assert pd.api.types.is_datetime64_any_dtype(df[col]), col
    for col in DATE_COLUMNS:
        assert (df[col].dropna() == df[col].dropna().dt.normalize()).all(), col
    for col in BOOL_COLUMNS:
        assert df[col].dtype == bool, col
    for col in INT_COLUMNS:
        assert pd.api.types.is_integer_dtype(df[col]) and df[col].dtype != object, col
    assert str(df["followup_nrs"].dtype) == "Int64"
    assert str(df["satisfied"].dtype) == "boolean"
    for col in ("height_cm", "weight_kg", "bmi", "baseline_ome_mg_per_day", "itt_dose_mg",
                "initial_daily_dose_mg", "surgery_duration_hours", "total_charge_cny",
                "self_pay_cny", "cancer_duration_months", "pain_duration_months", "os_months"):
        assert df[col].dtype == float, col


def test_deterministic_for_a_seed_and_seed_dependent(df):
    pd.testing.assert_frame_equal(df, build_latent(11))
    other = build_latent(12)
    assert not other.equals(df)
    assert (other["patient_id"] != df["patient_id"]).any()


def test_fast():
    start = time.perf_counter()
    build_latent(5)
    assert time.perf_counter() - start < 3.0


def test_achieved_stats_is_json_serialisable(stats):
    json.dumps(stats)


# ---------------------------------------------------------------------------
# Appendix A: counts (exact)
# ---------------------------------------------------------------------------
COUNT_KEYS = [
    "followup_status", "implant_year", "implant_year_followed", "sex", "underweight", "adl_lt_60",
    "arrival_wheelchair_or_cart", "pressure_sore", "skin_compromising_line", "cancer_site",
    "metastasis", "prior_treatment", "pain_site", "pain_preceded_cancer", "opioid_users",
    "ome_gt_200", "ome_gt_500", "adjuvant_any", "prior_pain_intervention", "implant_reason",
    "itt_count", "itt_drug", "insertion_level_group", "catheter_cephalad", "tip_group", "tip_T6",
    "idds_drug", "complications",
]


@pytest.mark.parametrize("key", COUNT_KEYS)
def test_count_targets(stats, key):
    assert stats[key] == TARGETS[key]


@pytest.mark.parametrize("key", ["systemic_opioid_after", "satisfied", "deaths", "censored",
                                 "baseline_nrs_counts", "followup_nrs_counts"])
def test_followed_count_targets(stats, key):
    assert stats["followed"][key] == TARGETS["followed"][key]


def test_cohort_size_and_bmi_extremes(stats):
    assert stats["n"] == TARGETS["n"] == N
    assert stats["followed"]["n"] == TARGETS["followup_status"]["followed"]
    assert stats["bmi"]["min"] == TARGETS["bmi"]["min"]
    assert stats["bmi"]["max"] == TARGETS["bmi"]["max"]


# (label, count getter, denominator, printed percentage, decimals, paper-inconsistent)
PRINTED = [
    ("2021", lambda s: s["implant_year"][2021], 96, "28.1", 1, False),
    ("2022", lambda s: s["implant_year"][2022], 96, "18.8", 1, False),
    ("2023", lambda s: s["implant_year"][2023], 96, "53.1", 1, False),
    ("female", lambda s: s["sex"]["F"], 96, "49.0", 1, False),
    ("male", lambda s: s["sex"]["M"], 96, "51.0", 1, False),
    ("underweight", lambda s: s["underweight"], 96, "30.2", 1, False),
    ("adl<60", lambda s: s["adl_lt_60"], 96, "38.5", 1, False),
    ("wheelchair", lambda s: s["arrival_wheelchair_or_cart"], 96, "55.2", 1, False),
    ("pressure sore", lambda s: s["pressure_sore"], 96, "24.0", 1, False),
    ("skin line", lambda s: s["skin_compromising_line"], 96, "29.2", 1, False),
    ("lung", lambda s: s["cancer_site"]["lung"], 96, "34.4", 1, False),
    ("colorectal", lambda s: s["cancer_site"]["colorectal"], 96, "17.7", 1, False),
    ("pancreas", lambda s: s["cancer_site"]["pancreas"], 96, "11.5", 1, False),
    ("breast", lambda s: s["cancer_site"]["breast"], 96, "5.2", 1, False),
    ("liver cancer", lambda s: s["cancer_site"]["liver"], 96, "4.2", 1, False),
    ("metastasis", lambda s: s["metastasis"]["any"], 96, "62.5", 1, False),
    ("bone met", lambda s: s["metastasis"]["bone"], 96, "39.6", 1, False),
    ("liver met", lambda s: s["metastasis"]["liver"], 96, "18.8", 1, False),
    ("lung met", lambda s: s["metastasis"]["lung"], 96, "8.3", 1, False),
    ("surgery", lambda s: s["prior_treatment"]["surgery"], 96, "51.0", 1, False),
    ("chemoradiotherapy", lambda s: s["prior_treatment"]["chemoradiotherapy"], 96, "66.7", 1, False),
    ("immunotherapy", lambda s: s["prior_treatment"]["immunotherapy"], 96, "31.3", 1, False),
    ("any antineoplastic", lambda s: s["prior_treatment"]["any"], 96, "88.5", 1, False),
    ("lumbosacral", lambda s: s["pain_site"]["lumbosacral"], 96, "41.7", 1, False),
    ("abdomen", lambda s: s["pain_site"]["abdomen"], 96, "31.3", 1, False),
    ("back", lambda s: s["pain_site"]["back"], 96, "27.1", 1, False),
    ("lower limb", lambda s: s["pain_site"]["lower_limb"], 96, "19.8", 1, False),
    ("perineum", lambda s: s["pain_site"]["perineum"], 96, "7.3", 1, False),
    ("chest", lambda s: s["pain_site"]["chest"], 96, "7.3", 1, False),
    ("head/neck", lambda s: s["pain_site"]["head_neck"], 96, "5.2", 1, False),
    ("upper limb", lambda s: s["pain_site"]["upper_limb"], 96, "2.1", 1, False),
    ("pain first", lambda s: s["pain_preceded_cancer"], 96, "12.5", 1, False),
    ("opioid users", lambda s: s["opioid_users"], 96, "68.8", 1, False),
    ("OME>200", lambda s: s["ome_gt_200"], 96, "42.7", 1, False),
    ("OME>500", lambda s: s["ome_gt_500"], 96, "24.0", 1, False),
    ("adjuvant", lambda s: s["adjuvant_any"], 96, "32.3", 1, False),
    ("prior procedure", lambda s: s["prior_pain_intervention"], 96, "7.3", 1, False),
    ("inadequate relief", lambda s: s["implant_reason"]["inadequate_relief"], 96, "93.8", 1, False),
    ("side effects", lambda s: s["implant_reason"]["side_effects"], 96, "6.3", 1, False),
    ("ITT 0", lambda s: s["itt_count"][0], 96, "17.7", 1, False),
    ("ITT 1", lambda s: s["itt_count"][1], 96, "70.8", 1, False),
    ("ITT 2", lambda s: s["itt_count"][2], 96, "11.5", 1, False),
    ("any ITT", lambda s: s["itt_count"][1] + s["itt_count"][2], 96, "82.3", 1, False),
    ("ITT morphine", lambda s: s["itt_drug"]["morphine"], 96, "44.8", 1, False),
    ("ITT hydromorphone", lambda s: s["itt_drug"]["hydromorphone"], 96, "34.4", 1, False),
    ("ITT bupivacaine", lambda s: s["itt_drug"]["bupivacaine"], 96, "3.1", 1, False),
    ("L2-L3", lambda s: s["insertion_level_group"]["L2-L3"], 96, "57.3", 1, False),
    ("L3-L4", lambda s: s["insertion_level_group"]["L3-L4"], 96, "31.3", 1, False),
    ("insertion other (IC-02)", lambda s: s["insertion_level_group"]["other"], 96, "11.4", 1, True),
    ("cephalad", lambda s: s["catheter_cephalad"], 96, "94.8", 1, False),
    ("tip T1-T5", lambda s: s["tip_group"]["T1_T5"], 96, "3.1", 1, False),
    ("tip T6-T9", lambda s: s["tip_group"]["T6_T9"], 96, "64.6", 1, False),
    ("tip T10 or lower", lambda s: s["tip_group"]["T10_or_lower"], 96, "32.3", 1, False),
    ("tip T6", lambda s: s["tip_T6"], 96, "19.8", 1, False),
    ("pump morphine", lambda s: s["idds_drug"]["morphine"], 96, "63.5", 1, False),
    ("pump hydromorphone", lambda s: s["idds_drug"]["hydromorphone"], 96, "26.0", 1, False),
    ("pump bupivacaine", lambda s: s["idds_drug"]["bupivacaine"], 96, "1.0", 1, False),
    ("pump combination (IC-01)", lambda s: s["idds_drug"]["morphine+bupivacaine"], 96, "9.5", 1,
     True),
    ("PDPH", lambda s: s["complications"]["pdph"], 96, "12.5", 1, False),
    ("fever", lambda s: s["complications"]["fever"], 96, "8.3", 1, False),
    ("retention/constipation (IC-03)",
     lambda s: s["complications"]["urinary_retention_constipation"], 96, "3.13", 2, False),
    ("death POD1 (IC-03)", lambda s: s["complications"]["in_hospital_death"], 96, "1.04", 2, False),
    ("complete follow-up", lambda s: s["followup_status"]["followed"], 96, "75.0", 1, False),
    ("opioid stopped", lambda s: s["followed"]["systemic_opioid_after"]["stopped"], 72, "31.9", 1,
     False),
    ("opioid <100", lambda s: s["followed"]["systemic_opioid_after"]["lt_100"], 72, "51.4", 1,
     False),
    ("opioid other", lambda s: s["followed"]["systemic_opioid_after"]["ge_100"], 72, "16.7", 1,
     False),
    ("stopped or reduced", lambda s: s["followed"]["systemic_opioid_after"]["stopped"]
     + s["followed"]["systemic_opioid_after"]["lt_100"], 72, "83.3", 1, False),
    ("satisfied", lambda s: s["followed"]["satisfied"], 72, "75.0", 1, False),
    ("unsatisfied", lambda s: 72 - s["followed"]["satisfied"], 72, "25.0", 1, False),
]


@pytest.mark.parametrize("label, getter, denominator, printed, dp, inconsistent", PRINTED,
                         ids=[p[0] for p in PRINTED])
def test_printed_percentages_half_up(stats, label, getter, denominator, printed, dp, inconsistent):
    recomputed = pct(getter(stats), denominator, dp)
    if inconsistent:  # IC-01 / IC-02: the paper's forced-to-100 value cannot be reproduced
        assert recomputed != Decimal(printed)
        assert recomputed == {"insertion other (IC-02)": Decimal("11.5"),
                              "pump combination (IC-01)": Decimal("9.4")}[label]
    else:
        assert recomputed == Decimal(printed)


def test_half_up_differs_from_python_rounding_where_the_paper_says():
    assert pct(30, 96) == Decimal("31.3") and f"{30 / 96 * 100:.1f}" == "31.2"
    assert pct(6, 96) == Decimal("6.3") and f"{6 / 96 * 100:.1f}" == "6.2"


# ---------------------------------------------------------------------------
# Appendix A: means and SDs (central half of the rounding interval)
# ---------------------------------------------------------------------------
MEAN_SD_KEYS = [
    ("age_years", 96), ("bmi", 96), ("adl_barthel", 96), ("itt_dose_morphine_mg", 43),
    ("itt_dose_hydromorphone_mg", 33), ("surgery_duration_hours", 96),
    ("initial_dose_morphine_mg", 61), ("initial_dose_hydromorphone_mg", 25), ("los_days", 96),
    ("postop_los_days", 96), ("total_charge_cny", 96), ("self_pay_cny", 96),
]


def _check_mean_sd(achieved: dict, target: dict, n: int) -> None:
    dp = target["dp"]
    band = 0.25 * 10**-dp
    assert achieved["n"] == n
    for stat in ("mean", "sd"):
        value = achieved[stat]
        assert abs(value - target[stat]) <= band, (stat, value, target[stat])
        shown = Decimal(repr(value))
        step = Decimal(1).scaleb(-dp)
        expected = Decimal(str(target[stat])).quantize(step)
        assert shown.quantize(step, ROUND_HALF_UP) == expected
        assert shown.quantize(step, ROUND_HALF_EVEN) == expected


@pytest.mark.parametrize("key, n", MEAN_SD_KEYS, ids=[k for k, _ in MEAN_SD_KEYS])
def test_mean_sd_targets(stats, key, n):
    _check_mean_sd(stats[key], TARGETS[key], n)


@pytest.mark.parametrize("key", ["baseline_nrs", "followup_nrs"])
def test_nrs_mean_sd_on_the_followed(stats, key):
    _check_mean_sd(stats["followed"][key], TARGETS["followed"][key], 72)


# ---------------------------------------------------------------------------
# Appendix A: medians / IQRs (pinned order statistics)
# ---------------------------------------------------------------------------
def _check_quartiles(achieved: dict, target: dict) -> None:
    weibull = [achieved["q1"], achieved["median"], achieved["q3"]]
    assert weibull == achieved["type7"] == achieved["hinges"]
    expected = [Decimal(target[k]).quantize(Decimal(1).scaleb(-target["dp"]))
                for k in ("q1", "median", "q3")]
    assert [half_up(v, target["dp"]) for v in weibull] == expected


@pytest.mark.parametrize("key, n", [("cancer_duration_months", 96), ("pain_duration_months", 96),
                                    ("ome_users", 66)])
def test_quartile_targets(stats, key, n):
    assert stats[key]["n"] == n
    _check_quartiles(stats[key], TARGETS[key])


def test_quartiles_recomputed_with_numpy(df):
    users = np.sort(df.loc[df["systemic_opioid_user"], "baseline_ome_mg_per_day"].to_numpy())
    for method in ("weibull", "linear"):
        assert list(np.percentile(users, [25, 50, 75], method=method)) == [100, 290, 633]
    # x16 = x17 = x18 = 100, x33 = x34 = 290, x49 = x50 = x51 = 633 (1-based)
    assert (users[15:18] == 100).all() and (users[32:34] == 290).all()
    assert (users[48:51] == 633).all()
    assert users[24] <= 200 < users[25] and users[42] <= 500 < users[43]
    for col in ("cancer_duration_months", "pain_duration_months"):
        days = np.sort(df[col].to_numpy() * MONTH)
        for a, b in ((23, 24), (47, 48), (71, 72)):
            assert round(days[a]) == round(days[b])


def test_ome_values_are_whole_mg_and_zero_for_non_users(df):
    ome = df["baseline_ome_mg_per_day"]
    assert (ome == np.round(ome)).all()
    assert (ome[~df["systemic_opioid_user"]] == 0).all()
    assert (ome[df["systemic_opioid_user"]] > 0).all()


# ---------------------------------------------------------------------------
# Survival: construction and four KM engines
# ---------------------------------------------------------------------------
def _km_reference(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact product-limit estimate at each event time."""
    times = np.unique(time[event == 1])
    s, values = Fraction(1), []
    for u in times:
        at_risk = int((time >= u).sum())
        s *= Fraction(at_risk - int(((time == u) & (event == 1)).sum()), at_risk)
        values.append(s)
    return times, np.array(values, dtype=object)


def _first_time_below(times, surv, p):
    return float(times[np.asarray(surv, dtype=float) <= p][0])


@pytest.fixture(scope="module")
def survival_data(followed):
    return followed["os_months"].to_numpy(), followed["os_event"].to_numpy()


def test_km_and_descriptive_quartiles_round_to_target(stats):
    target = TARGETS["followed"]["os_months"]
    km, descriptive = stats["followed"]["os_months"], stats["followed"]["os_months_descriptive"]
    for key in ("q1", "median", "q3"):
        assert half_up(km[key], 0) == Decimal(target[key])
        assert km[key] == descriptive[key]
    _check_quartiles(descriptive, target)


def test_km_steps_never_land_on_the_quartile_thresholds(survival_data):
    times, surv = _km_reference(*survival_data)
    assert not {Fraction(3, 4), Fraction(1, 2), Fraction(1, 4)} & set(surv)


def test_four_km_engines_agree(survival_data):
    from lifelines import KaplanMeierFitter
    from lifelines.utils import qth_survival_times
    from scipy import stats as sps
    from sksurv.nonparametric import kaplan_meier_estimator
    from statsmodels.api import SurvfuncRight

    time_, event = survival_data
    ref_times, ref_surv = _km_reference(time_, event)
    ref = np.array([float(v) for v in ref_surv])

    kmf = KaplanMeierFitter().fit(time_, event)
    lifelines_s = kmf.survival_function_at_times(ref_times).to_numpy()
    sm = SurvfuncRight(time_, event)
    sm_s = np.array([sm.surv_prob[np.searchsorted(sm.surv_times, t, side="right") - 1]
                     for t in ref_times])
    sp = sps.ecdf(sps.CensoredData(uncensored=time_[event == 1], right=time_[event == 0])).sf
    sp_s = sp.evaluate(ref_times)
    sk_t, sk_full = kaplan_meier_estimator(event.astype(bool), time_)
    sk_s = np.array([sk_full[np.searchsorted(sk_t, t, side="right") - 1] for t in ref_times])
    for engine in (lifelines_s, sm_s, sp_s, sk_s):
        assert np.max(np.abs(engine - ref)) < 1e-12

    expected = [_first_time_below(ref_times, ref, p) for p in (0.75, 0.5, 0.25)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lifelines_q = [float(qth_survival_times(p, kmf.survival_function_)) for p in (0.75, 0.25)]
    assert [lifelines_q[0], float(kmf.median_survival_time_), lifelines_q[1]] == expected
    assert [float(sm.quantile(p)) for p in (0.25, 0.5, 0.75)] == expected
    assert [_first_time_below(sp.quantiles, sp.probabilities, p)
            for p in (0.75, 0.5, 0.25)] == expected
    assert [_first_time_below(sk_t, sk_full, p) for p in (0.75, 0.5, 0.25)] == expected


def test_median_ci_lifelines_loglog_matches_statsmodels_cloglog(survival_data):
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times
    from statsmodels.api import SurvfuncRight

    time_, event = survival_data
    kmf = KaplanMeierFitter().fit(time_, event)
    lo, hi = median_survival_times(kmf.confidence_interval_).to_numpy().ravel()
    sm_lo, sm_hi = SurvfuncRight(time_, event).quantile_ci(0.5, method="cloglog")
    assert abs(lo - sm_lo) <= 0.05 and abs(hi - sm_hi) <= 0.05
    assert lo < kmf.median_survival_time_ < hi


def test_survival_construction(df, followed):
    dead = followed[followed["os_event"] == 1]
    alive = followed[followed["os_event"] == 0]
    assert (len(dead), len(alive)) == (56, 16)
    days = np.sort(dead["os_days"].to_numpy())
    windows = {18: (47, 74), 36: (77, 104), 54: (168, 194)}
    for k, (lo, hi) in windows.items():  # 1-based order statistics, tie-pinned pairs
        assert lo <= days[k - 1] <= hi and days[k] == days[k - 1]
    assert (alive["implant_date"] <= pd.Timestamp("2023-08-31")).all()
    assert (alive["last_contact_date"] == CUTOFF).all()
    assert (alive["os_days"] > days[54]).all()  # no censoring before the third quartile
    assert (dead["death_date"] > dead["discharge_date"]).all()
    assert (dead["death_date"] <= CUTOFF).all()
    assert (dead["vital_status_at_cutoff"] == "dead").all()
    assert (alive["vital_status_at_cutoff"] == "alive").all()
    assert followed.groupby("implant_year").size().to_dict() == TARGETS["implant_year_followed"]


def test_no_date_after_cutoff(df):
    for col in DATE_COLUMNS + ["implant_start_time", "implant_end_time"]:
        assert (df[col].dropna() <= CUTOFF + pd.Timedelta(days=1)).all(), col
        if col in DATE_COLUMNS:
            assert (df[col].dropna() <= CUTOFF).all(), col


def test_excluded_patients(df):
    periop = df[df["followup_status"] == "periop_death"].iloc[0]
    assert periop["postop_los_days"] == 1 and periop["in_hospital_death"]
    assert periop["death_date"] == periop["discharge_date"] == periop["implant_date"] + pd.Timedelta(
        days=1)
    assert periop["os_days"] == 1 and periop["os_event"] == 1
    assert df["in_hospital_death"].sum() == 1

    ex = df[df["followup_status"] == "explanted"].iloc[0]
    implant = ex["implant_date"].date()
    ten_months = dt.date(implant.year + (implant.month + 9) // 12, (implant.month + 9) % 12 + 1,
                         min(implant.day, 28))
    assert ex["explanted"] and ex["comp_poor_wound_healing"]
    assert ex["explant_date"].date() > ten_months
    assert ex["explant_date"] <= CUTOFF
    assert ex["os_event"] == 0 and ex["last_contact_date"] == ex["explant_date"]
    assert df["explanted"].sum() == df["comp_poor_wound_healing"].sum() == 1

    lost = df[df["followup_status"] == "lost_or_refused"]
    assert len(lost) == 22
    assert (lost["last_contact_date"] == lost["discharge_date"]).all()
    assert (lost["os_event"] == 0).all() and (lost["os_days"] == lost["postop_los_days"]).all()
    assert lost["death_date"].isna().all() and lost["vital_status_at_cutoff"].isna().all()

    not_followed = df[df["followup_status"] != "followed"]
    for col in ("followup_nrs", "satisfied", "systemic_opioid_after", "respondent",
                "dissatisfaction_reason"):
        assert not_followed[col].isna().all(), col


# ---------------------------------------------------------------------------
# Joint constraints
# ---------------------------------------------------------------------------
def test_itt_drug_null_iff_no_trial(df):
    no_trial = df["itt_count"] == 0
    assert (df["itt_drug"].isna() == no_trial).all()
    assert (df["itt_dose_mg"].isna() == no_trial).all()
    assert df["itt_count"].between(0, 3).all()


def test_pain_before_cancer(df):
    assert ((df["pain_onset_date"] < df["cancer_dx_date"]) == df["pain_preceded_cancer"]).all()
    assert ((df["pain_duration_months"] > df["cancer_duration_months"])
            == df["pain_preceded_cancer"]).all()
    assert df["pain_preceded_cancer"].sum() == 12


def test_opioid_bookkeeping(df, followed):
    users_followed = followed["systemic_opioid_user"].sum()
    assert users_followed >= TARGETS["followed"]["opioid_users_min"]
    reduced = followed["systemic_opioid_after"].isin(["stopped", "lt_100"])
    assert followed.loc[reduced, "systemic_opioid_user"].all()
    assert set(followed["systemic_opioid_after"]) == {"stopped", "lt_100", "ge_100"}
    assert ((df["baseline_ome_mg_per_day"] > 0) == df["systemic_opioid_user"]).all()


def test_catheter_direction_and_tip(df):
    for _, row in df.iterrows():
        upper, lower = row["insertion_level"].split("-")
        tip = level_rank(row["catheter_tip_level"])
        if row["catheter_cephalad"]:
            assert tip < level_rank(upper), row["patient_id"]
        else:
            assert tip >= level_rank(lower), row["patient_id"]
    rank = df["catheter_tip_level"].map(level_rank)
    group = np.where(rank <= level_rank("T5"), "T1_T5",
                     np.where(rank <= level_rank("T9"), "T6_T9", "T10_or_lower"))
    assert (df["tip_group"] == group).all()
    assert rank.between(level_rank("T1"), level_rank("L2")).all()
    group = df["insertion_level"].where(df["insertion_level"].isin(["L2-L3", "L3-L4"]), "other")
    assert (df["insertion_level_group"] == group).all()
    counts = df["catheter_tip_level"].value_counts()
    assert counts.idxmax() == "T6" and (counts.drop("T6") < counts["T6"]).all()


def test_tip_consistent_with_pain_sites(df):
    """R-OR-06: no lower-body pain with a tip above T6, no head/neck pain below T9."""
    rank = df["catheter_tip_level"].map(level_rank)
    lower_body = df[["pain_site_lumbosacral", "pain_site_perineum",
                     "pain_site_lower_limb"]].any(axis=1)
    assert not (lower_body & (rank < level_rank("T6"))).any()
    assert not (df["pain_site_head_neck"] & (rank > level_rank("T9"))).any()


def test_metastases_consistent(df):
    assert not (df["cancer_site"].eq("liver") & df["met_liver"]).any()
    assert not (df["cancer_site"].eq("lung") & df["met_lung"]).any()
    assert not (df["cancer_site"].eq("bone") & df["met_bone"]).any()
    sites = df[["met_bone", "met_liver", "met_lung", "met_other"]]
    assert (sites.any(axis=1) == df["metastasis_any"]).all()
    assert ((df["met_other_sites"] != "") == df["met_other"]).all()
    other = df["met_other_sites"].str.split(";").explode()
    other = other[other != ""]
    assert set(other) <= {"peritoneum", "brain", "adrenal", "pleura"}
    assert (other.value_counts() < 8).all()


def test_multi_response_rows(df):
    pain = df[[c for c in df.columns if c.startswith("pain_site_")]]
    assert (pain.sum(axis=1) >= 1).all() and pain.to_numpy().sum() == 136
    prior = df[["prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy"]]
    assert prior.any(axis=1).sum() == 85


def test_cancer_codes_and_sex(df):
    assert df["cancer_icd10"].str.fullmatch(r"C\d{2}(\.\d)?").all()
    prefix = {"lung": ("C34",), "colorectal": ("C18", "C19", "C20"), "pancreas": ("C25",),
              "breast": ("C50",), "liver": ("C22",)}
    for site, codes in prefix.items():
        assert df.loc[df["cancer_site"] == site, "cancer_icd10"].str.startswith(codes).all()
    others = df.loc[~df["cancer_site"].isin(list(prefix)), "cancer_site"].value_counts()
    assert (others <= 3).all()
    assert (df.loc[df["cancer_site"].isin(["breast", "cervix", "ovary"]), "sex"] == "F").all()
    assert (df.loc[df["cancer_site"] == "prostate", "sex"] == "M").all()


# ---------------------------------------------------------------------------
# Dates and derived columns
# ---------------------------------------------------------------------------
def _days(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a - b).dt.days


def test_derived_durations_exact(df):
    assert (df["cancer_duration_months"]
            == _days(df["implant_date"], df["cancer_dx_date"]) / MONTH).all()
    assert (df["pain_duration_months"]
            == _days(df["implant_date"], df["pain_onset_date"]) / MONTH).all()
    assert (df["los_days"] == _days(df["discharge_date"], df["admission_date"])).all()
    assert (df["postop_los_days"] == _days(df["discharge_date"], df["implant_date"])).all()
    end = df["death_date"].fillna(df["last_contact_date"])
    assert (df["os_days"] == _days(end, df["implant_date"])).all()
    assert (df["os_months"] == df["os_days"] / MONTH).all()
    assert (df["os_event"] == df["death_date"].notna().astype(int)).all()
    assert (df["implant_year"] == df["implant_date"].dt.year).all()
    assert df["implant_date"].between("2021-01-01", "2023-12-31").all()


def test_stay_ordering(df):
    assert (df["admission_date"] <= df["implant_date"]).all()
    assert (df["implant_date"] <= df["discharge_date"]).all()
    assert (df["los_days"] >= df["postop_los_days"] + 1).all()
    assert (df["los_days"] - df["postop_los_days"] >= df["itt_count"] + 1).all()
    assert df["los_days"].le(45).all()
    assert (df["cancer_dx_date"] <= df["implant_date"]).all()
    assert (df["pain_onset_date"] <= df["implant_date"]).all()
    assert (df["last_contact_date"] >= df["discharge_date"]).all()


def test_operation_times(df):
    minutes = (df["implant_end_time"] - df["implant_start_time"]).dt.total_seconds() / 60
    assert (minutes == np.round(minutes)).all()
    assert (minutes == np.round(df["surgery_duration_hours"] * 60)).all()
    assert (np.abs(minutes / 60 - df["surgery_duration_hours"]) < 1e-12).all()
    assert (df["implant_start_time"].dt.normalize() == df["implant_date"]).all()
    assert (df["implant_end_time"].dt.normalize() == df["implant_date"]).all()
    assert minutes.between(60, 270).all()


def test_age_is_floor_of_years(df):
    for birth, implant, age in zip(df["birth_date"], df["implant_date"], df["age_years"],
                                   strict=True):
        years = implant.year - birth.year - ((implant.month, implant.day) < (birth.month, birth.day))
        assert years == age
    assert df["age_years"].between(18, 100).all()
    age_at_dx = _days(df["cancer_dx_date"], df["birth_date"]) / 365.25
    assert (age_at_dx >= 18).all()


def test_bmi_is_half_up_of_weight_and_height(df):
    assert (df["height_cm"] == np.round(df["height_cm"])).all()
    assert (df["weight_kg"] * 2 == np.round(df["weight_kg"] * 2)).all()
    for h, w, bmi in zip(df["height_cm"], df["weight_kg"], df["bmi"], strict=True):
        exact = Fraction(w) * 10_000 / Fraction(int(h)) ** 2
        assert half_up(exact, 1) == Decimal(repr(bmi))
    assert df["height_cm"].between(130, 200).all() and df["weight_kg"].between(25, 150).all()
    assert ((df["bmi"] < 18.5) == (df["bmi"] * 10 < 185)).all()


# ---------------------------------------------------------------------------
# Grids and plausibility (a clean table triggers no warning rule)
# ---------------------------------------------------------------------------
def _on_grid(values: pd.Series, step: float) -> bool:
    units = values / step
    return bool((np.abs(units - np.round(units)) < 1e-9).all())


def test_dose_grids_and_ranges(df):
    pump = df.set_index("idds_drug")["initial_daily_dose_mg"]
    morphine = pump.loc[["morphine", "morphine+bupivacaine"]]
    hydromorphone = pump.loc[["hydromorphone"]]
    assert _on_grid(morphine, 0.05) and morphine.between(0.1, 5).all()
    assert _on_grid(hydromorphone, 0.01) and hydromorphone.between(0.02, 0.8).all()
    assert pump.loc[["bupivacaine"]].between(0.01, 20).all()
    itt = df.dropna(subset=["itt_drug"]).set_index("itt_drug")["itt_dose_mg"]
    assert _on_grid(itt.loc[["morphine"]], 0.05) and itt.loc[["morphine"]].between(0.05, 0.5).all()
    assert _on_grid(itt.loc[["hydromorphone"]], 0.01)
    assert itt.loc[["hydromorphone"]].between(0.01, 0.1).all()
    assert itt.loc[["bupivacaine"]].between(0.1, 2.5).all()


def test_oral_to_intrathecal_ratio_plausible(df):
    """R-PU-05: OME / IT morphine equivalent within [50, 1000] for opioid users."""
    users = df[df["systemic_opioid_user"] & (df["idds_drug"] != "bupivacaine")]
    potency = np.where(users["idds_drug"] == "hydromorphone", 5, 1)
    ratio = users["baseline_ome_mg_per_day"] / (users["initial_daily_dose_mg"] * potency)
    assert ratio.between(50, 1000).all()


def test_plausibility_rules(df):
    assert (df["adl_barthel"] % 5 == 0).all() and df["adl_barthel"].between(0, 100).all()
    assert not ((df["adl_barthel"] >= 60) & (df["arrival_mode"] == "cart")).any()  # R-DM-06
    assert not ((df["bmi"] < 16) & (df["adl_barthel"] == 100)).any()  # R-DM-07
    assert (df["arrival_wheelchair_or_cart"] == df["arrival_mode"].isin(["wheelchair", "cart"])).all()
    assert (df["skin_line_type"].notna() == df["skin_compromising_line"]).all()
    assert (df["total_charge_cny"] > 0).all()
    assert ((df["self_pay_cny"] >= 0) & (df["self_pay_cny"] <= df["total_charge_cny"])).all()
    own = df[df["insurance_type"] == "self_pay"]
    assert (own["self_pay_cny"] == own["total_charge_cny"]).all()  # R-CS-03
    assert set(df["insurance_type"]) <= {"employee", "resident", "self_pay", "commercial", "other"}
    assert (df["cancer_duration_months"] <= 360).all() and (df["pain_duration_months"] <= 240).all()
    assert df["baseline_nrs"].between(4, 10).all()
    assert df["device_model"].str.startswith("SynchroMed II 8637-").all()
    assert set(df["implant_reason"]) == {"inadequate_relief", "side_effects"}
    assert not df["comp_infection"].any()


def test_followup_answers(df, followed):
    assert followed["followup_nrs"].notna().all() and followed["satisfied"].notna().all()
    assert followed["followup_nrs"].between(0, 10).all()
    assert set(followed["respondent"]) <= {"patient", "family"}
    unhappy = followed["satisfied"] == False  # noqa: E712 (nullable boolean)
    assert followed.loc[unhappy, "dissatisfaction_reason"].notna().all()
    assert followed.loc[~unhappy, "dissatisfaction_reason"].isna().all()
    reasons = followed["dissatisfaction_reason"].dropna().str.split("; ").explode()
    assert set(reasons) <= {"poor pain control", "refill inconvenience", "short survival"}
    assert ((df["vital_status_at_cutoff"] == "dead") == df["death_date"].notna()).all()


@pytest.mark.parametrize("seed", [1, 2, 3, 2024])
def test_targets_hold_for_other_seeds(seed):
    s = achieved_stats(build_latent(seed))
    for key in COUNT_KEYS:
        assert s[key] == TARGETS[key], key
    for key, n in MEAN_SD_KEYS:
        _check_mean_sd(s[key], TARGETS[key], n)
    for key in ("cancer_duration_months", "pain_duration_months", "ome_users"):
        _check_quartiles(s[key], TARGETS[key])
    _check_quartiles(s["followed"]["os_months_descriptive"], TARGETS["followed"]["os_months"])
    assert s["followed"]["os_months"] == {k: s["followed"]["os_months_descriptive"][k]
                                          for k in ("q1", "median", "q3")}
