"""Fixtures for the analysis tests: small cohort frames built in code (no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

CUTOFF = pd.Timestamp("2024-03-20")


def build_cohort(n: int = 60, seed: int = 3) -> pd.DataFrame:
    """A random cohort frame with every column of docs/cohort_variables.md.

    Not calibrated to the paper: it only exercises the code paths. Survival
    times are continuous-ish (days) with a few ties and administrative censoring.
    """
    rng = np.random.default_rng(seed)
    implant = pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 1095, n), unit="D")
    status = rng.choice(["followed", "lost_or_refused"], size=n, p=[0.75, 0.25]).astype(object)
    status[0] = "periop_death"
    status[1] = "explanted"
    site = rng.choice(["lung", "colorectal", "pancreas", "breast", "liver", "stomach", "cervix",
                       "prostate"], size=n, p=[.3, .18, .12, .06, .06, .1, .1, .08])
    adl = rng.choice(np.arange(0, 101, 5), size=n)
    met = rng.random(n) < 0.6
    ome_user = rng.random(n) < 0.7
    ome = np.where(ome_user, np.round(np.exp(rng.normal(5.5, 0.9, n)), 1), 0.0)
    risk = 0.02 * (60 - adl) + 0.4 * met + 0.3 * np.isin(site, ["pancreas", "liver"]) + 0.003 * (ome - 200) / 10
    death_days = np.maximum(8, np.round(rng.lognormal(np.log(80), 0.6, n) * np.exp(-0.3 * risk))).astype(int)
    dies = rng.random(n) < 0.8
    max_days = (CUTOFF - implant).days.to_numpy()
    event = (dies & (death_days <= max_days)).astype(int)
    os_days = np.where(event == 1, death_days, np.minimum(max_days, 200 + rng.integers(0, 400, n)))
    # lost patients: censored at discharge
    los_post = rng.integers(2, 12, n)
    lost = status == "lost_or_refused"
    os_days = np.where(lost, los_post, os_days)
    event = np.where(lost, 0, event)
    os_days[0], event[0] = 1, 1
    explant = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    explant[1] = implant[1] + pd.Timedelta(days=int(min(320, max_days[1])))
    os_days[1], event[1] = int(max_days[1]), 0
    itt = rng.choice([0, 1, 2], size=n, p=[.18, .7, .12])
    itt_drug = np.where(itt == 0, None, rng.choice(["morphine", "hydromorphone", "bupivacaine"], size=n,
                                                   p=[.55, .4, .05])).astype(object)
    itt_dose = np.where(itt_drug == "morphine", rng.choice([0.1, 0.15, 0.2, 0.3], n),
                        np.where(itt_drug == "hydromorphone", rng.choice([0.02, 0.03, 0.05], n),
                                 np.where(itt_drug == "bupivacaine", 1.0, np.nan)))
    idds = rng.choice(["morphine", "hydromorphone", "bupivacaine", "morphine+bupivacaine"], size=n,
                      p=[.62, .26, .02, .10])
    tip = rng.choice(["T4", "T6", "T7", "T8", "T9", "T10", "T11", "L1"], size=n)
    tip_group = np.where(np.isin(tip, ["T4"]), "T1_T5",
                         np.where(np.isin(tip, ["T6", "T7", "T8", "T9"]), "T6_T9", "T10_or_lower"))
    ins = rng.choice(["L2-L3", "L3-L4", "L1-L2", "L4-L5"], size=n, p=[.55, .3, .1, .05])
    fu = status == "followed"
    pre = rng.choice([6, 7, 8, 9], size=n, p=[.1, .4, .4, .1]).astype(float)
    post = np.clip(pre - rng.integers(2, 7, n), 0, 10).astype(float)
    after = np.where(fu, rng.choice(["stopped", "lt_100", "ge_100"], size=n, p=[.32, .51, .17]), None)
    satisfied = np.where(fu, rng.random(n) < 0.75, None)
    total = np.round(rng.normal(152000, 10000, n), 2)
    df = pd.DataFrame({
        "patient_id": [f"P{i:03d}" for i in range(n)],
        "implant_id": [f"I{i:03d}" for i in range(n)],
        "implant_date": implant.date,
        "implant_year": implant.year.astype(int),
        "admission_date": (implant - pd.to_timedelta(rng.integers(1, 8, n), unit="D")).date,
        "discharge_date": (implant + pd.to_timedelta(los_post, unit="D")).date,
        "age_years": np.clip(np.round(rng.normal(62, 10, n)), 25, 90).astype(int),
        "sex": rng.choice(["F", "M"], size=n),
        "insurance_type": rng.choice(["employee", "resident", "self_pay"], size=n),
        "height_cm": np.round(rng.normal(165, 8, n), 1),
        "weight_kg": np.round(rng.normal(55, 9, n), 1),
        "bmi": np.round(rng.normal(20.7, 3.1, n), 1),
        "adl_barthel": adl.astype(int),
        "pressure_sore": rng.random(n) < 0.24,
        "skin_compromising_line": rng.random(n) < 0.29,
        "arrival_wheelchair_or_cart": rng.random(n) < 0.55,
        "cancer_site": site,
        "cancer_dx_date": (implant - pd.to_timedelta(rng.integers(30, 1500, n), unit="D")).date,
        "cancer_duration_months": rng.integers(1, 60, n).astype(float),
        "metastasis_any": met,
        "met_bone": met & (rng.random(n) < 0.6),
        "met_liver": met & (rng.random(n) < 0.3),
        "met_lung": met & (rng.random(n) < 0.15),
        "met_other": met & (rng.random(n) < 0.2),
        "pain_onset_date": (implant - pd.to_timedelta(rng.integers(10, 400, n), unit="D")).date,
        "pain_duration_months": rng.integers(1, 24, n).astype(float),
        "pain_preceded_cancer": rng.random(n) < 0.12,
        **{f"pain_site_{s}": rng.random(n) < p for s, p in
           (("lumbosacral", .42), ("abdomen", .31), ("back", .27), ("lower_limb", .2), ("perineum", .07),
            ("chest", .07), ("head_neck", .05), ("upper_limb", .03))},
        "prior_surgery": rng.random(n) < 0.5,
        "prior_chemoradiotherapy": rng.random(n) < 0.67,
        "prior_immunotherapy": rng.random(n) < 0.31,
        "prior_pain_intervention": rng.random(n) < 0.07,
        "baseline_ome_mg_per_day": ome,
        "systemic_opioid_user": ome > 0,
        "n_adjuvant_drugs": rng.choice([0, 1, 2], size=n, p=[.68, .25, .07]),
        "baseline_nrs": pre,
        "implant_reason": rng.choice(["inadequate_relief", "side_effects"], size=n, p=[.94, .06]),
        "itt_count": itt,
        "itt_drug": itt_drug,
        "itt_dose_mg": itt_dose,
        "surgery_duration_hours": np.round(rng.normal(2.34, 0.68, n), 2),
        "insertion_level": ins,
        "insertion_level_group": np.where(np.isin(ins, ["L2-L3", "L3-L4"]), ins, "other"),
        "catheter_tip_level": tip,
        "tip_group": tip_group,
        "catheter_cephalad": rng.random(n) < 0.95,
        "device_model": "SynchroMed II 8637-20",
        "idds_drug": idds,
        "initial_daily_dose_mg": np.where(idds == "hydromorphone", np.round(rng.uniform(0.02, 0.5, n), 2),
                                          np.round(rng.uniform(0.1, 4, n), 2)),
        "los_days": los_post + rng.integers(1, 8, n),
        "postop_los_days": los_post,
        "total_charge_cny": total,
        "self_pay_cny": np.round(total * rng.uniform(0.05, 0.6, n), 2),
        "comp_pdph": rng.random(n) < 0.125,
        "comp_fever": rng.random(n) < 0.08,
        "comp_urinary_retention_constipation": rng.random(n) < 0.03,
        "comp_infection": False,
        "comp_poor_wound_healing": np.arange(n) == 1,
        "in_hospital_death": np.arange(n) == 0,
        "explanted": np.arange(n) == 1,
        "explant_date": explant.dt.date.to_numpy(),
        "followup_status": status,
        "followup_nrs": np.where(fu, post, np.nan),
        "satisfied": satisfied,
        "systemic_opioid_after": after,
        "death_date": [(implant[i] + pd.Timedelta(days=int(os_days[i]))).date() if event[i] else None
                       for i in range(n)],
        "last_contact_date": [None if event[i] else (implant[i] + pd.Timedelta(days=int(os_days[i]))).date()
                              for i in range(n)],
        "os_days": os_days.astype(int),
        "os_event": event.astype(int),
    })
    df["os_months"] = df["os_days"] / 30.4375
    df.loc[df["explant_date"].isna(), "explant_date"] = None
    return df


@pytest.fixture(scope="session")
def cohort() -> pd.DataFrame:
    """A 60-patient random cohort (treat as read-only; tests that modify must copy)."""
    return build_cohort()


@pytest.fixture
def cohort_factory():
    """Build a fresh cohort: ``cohort_factory(n=..., seed=...)``."""
    return build_cohort
