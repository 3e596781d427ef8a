"""Stage A of the synthetic data generator: the "latent truth" table.

``build_latent(seed)`` returns the 96 included patients of the calibrated cohort, one
row each. It carries every column of ``docs/cohort_variables.md`` under the same name
and type (``patient_id``, the raw 10-digit MRN, stands in for the mart's
``patient_key``), built so that every statistic the seed paper publishes (Wang et al.,
Heliyon 2024;10:e34522) holds on the table:

* categorical counts exactly;
* means and SDs (ddof 1) inside the central half of the display rounding interval,
  ``|stat - target| <= 0.25 * 10**-dp``, so half-up and half-even rounding agree;
* medians and IQRs through pinned order statistics, so SPSS (numpy ``weibull``),
  type 7 and Tukey hinges give the same value;
* Kaplan-Meier quartiles of the 72 followed patients through tie-pinned death times
  (no step of the survival curve lands on 0.75, 0.5 or 0.25), so every KM engine and
  the descriptive quartiles agree.

``TARGETS`` holds the published numbers, ``DESIGN`` our own assumptions (marked [A]
in the study reference), ``achieved_stats(df)`` recomputes every target from a frame.
The table is deterministic for a seed (one ``numpy.random.Generator``, no global
state). Dates are pandas ``datetime64[ns]`` at midnight; derived columns are exact
functions of them (months = days / 30.4375).

Extra (latent-only) columns for the EMR renderer
------------------------------------------------
admission_id            index admission key (住院号); the implant admission.
birth_date              date of birth; ``age_years`` is the floor of years to implant.
cancer_icd10            the primary malignancy's ICD-10 code, e.g. ``C34.1``.
met_other_sites         ``;``-joined other metastatic organs from peritoneum, brain,
                        adrenal, pleura ("" when none); ``met_other`` = non-empty.
arrival_mode            ``walk`` / ``wheelchair`` / ``cart`` (cart only with ADL < 60).
skin_line_type          the indwelling line behind ``skin_compromising_line``:
                        gastrostomy, enterostomy, urinary_catheter, gallbladder_drain,
                        abdominal_drain, thoracic_drain; null without a line.
implant_start_time,     incision and closure of the implant procedure (datetimes);
implant_end_time        end - start = ``surgery_duration_hours`` to the minute.
explant_reason          ``poor wound healing`` for the explanted patient, else null.
respondent              who answered the follow-up calls: ``patient`` / ``family``
                        (followed patients only).
dissatisfaction_reason  ``; ``-joined reasons of the unsatisfied (poor pain control,
                        refill inconvenience, short survival), else null.
vital_status_at_cutoff  ``dead`` (death_date present), ``alive`` (last reached contact
                        found the patient alive), null for the never reached.

The ITT columns (``itt_count``, ``itt_drug``, ``itt_dose_mg``: drug and dose of the
last trial) are in the mart list; the renderer places the trials.
``systemic_opioid_after`` uses the contract codes ``stopped`` / ``lt_100`` /
``ge_100`` (the paper's "other" is ``ge_100``).

Follow-up timeline rules the renderer must keep: censored followed patients are
reached alive on the cut-off 2024-03-20 (``last_contact_date``); a decedent's
``last_contact_date`` is the one reached call that found the patient alive, or the
discharge date when the first reached call already reported the death; the
explanted patient is last reached alive on the explant date (censored there in the
sensitivity analysis); the peri-operative death and the lost/refused have
``last_contact_date`` = discharge date.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pandas as pd

N = 96
DAYS_PER_MONTH = 30.4375
# the mean/SD fitter stops inside this fraction of the tolerance (float safety margin)
AIM = 0.4

# ---------------------------------------------------------------------------
# Published targets (Appendix A of the study reference, restated)
# ---------------------------------------------------------------------------
TARGETS: dict = {
    "n": 96,
    "cutoff": "2024-03-20",
    "followup_status": {"followed": 72, "periop_death": 1, "explanted": 1, "lost_or_refused": 22},
    "implant_year": {2021: 27, 2022: 18, 2023: 51},
    "implant_year_followed": {2021: 20, 2022: 14, 2023: 38},  # [A] split inside the 72
    "age_years": {"mean": 62, "sd": 10, "dp": 0},
    "sex": {"F": 47, "M": 49},
    "bmi": {"mean": 20.7, "sd": 3.1, "dp": 1, "min": 14.3, "max": 29.4},
    "underweight": 29,  # BMI < 18.5
    "adl_barthel": {"mean": 67, "sd": 24, "dp": 0},
    "adl_lt_60": 37,
    "arrival_wheelchair_or_cart": 53,
    "pressure_sore": 23,
    "skin_compromising_line": 28,
    "cancer_site": {"lung": 33, "colorectal": 17, "pancreas": 11, "breast": 5, "liver": 4,
                    "other": 26},
    "cancer_duration_months": {"q1": 12, "median": 24, "q3": 48, "dp": 0},
    "metastasis": {"any": 60, "bone": 38, "liver": 18, "lung": 8},
    "prior_treatment": {"surgery": 49, "chemoradiotherapy": 64, "immunotherapy": 30, "any": 85},
    "pain_site": {"lumbosacral": 40, "abdomen": 30, "back": 26, "lower_limb": 19, "perineum": 7,
                  "chest": 7, "head_neck": 5, "upper_limb": 2},
    "pain_duration_months": {"q1": 2, "median": 6, "q3": 12, "dp": 0},
    "pain_preceded_cancer": 12,
    "opioid_users": 66,
    "ome_users": {"q1": 100, "median": 290, "q3": 633, "dp": 0},  # on the 66 users (IC-06)
    "ome_gt_200": 41,
    "ome_gt_500": 23,
    "adjuvant_any": 31,
    "prior_pain_intervention": 7,
    "implant_reason": {"inadequate_relief": 90, "side_effects": 6},
    "itt_count": {0: 17, 1: 68, 2: 11},
    "itt_drug": {"morphine": 43, "hydromorphone": 33, "bupivacaine": 3},
    "itt_dose_morphine_mg": {"mean": 0.18, "sd": 0.10, "dp": 2},
    "itt_dose_hydromorphone_mg": {"mean": 0.03, "sd": 0.02, "dp": 2},
    "surgery_duration_hours": {"mean": 2.34, "sd": 0.68, "dp": 2},
    "insertion_level_group": {"L2-L3": 55, "L3-L4": 30, "other": 11},
    "catheter_cephalad": 91,
    "tip_group": {"T1_T5": 3, "T6_T9": 62, "T10_or_lower": 31},
    "tip_T6": 19,
    "idds_drug": {"morphine": 61, "hydromorphone": 25, "bupivacaine": 1,
                  "morphine+bupivacaine": 9},
    # initial pump dose of morphine alone (n = 61, IC-08) and of hydromorphone (n = 25)
    "initial_dose_morphine_mg": {"mean": 1.07, "sd": 1.05, "dp": 2},
    "initial_dose_hydromorphone_mg": {"mean": 0.16, "sd": 0.13, "dp": 2},
    "los_days": {"mean": 11, "sd": 5, "dp": 0},
    "postop_los_days": {"mean": 6, "sd": 3, "dp": 0},
    "total_charge_cny": {"mean": 152084, "sd": 10395, "dp": 0},
    "self_pay_cny": {"mean": 45108, "sd": 28401, "dp": 0},
    "complications": {"pdph": 12, "fever": 8, "urinary_retention_constipation": 3,
                      "in_hospital_death": 1, "poor_wound_healing": 1},
    "followed": {
        "baseline_nrs": {"mean": 7.5, "sd": 0.8, "dp": 1},
        "baseline_nrs_counts": {6: 7, 7: 29, 8: 29, 9: 7},
        "followup_nrs": {"mean": 3.0, "sd": 1.1, "dp": 1},
        "followup_nrs_counts": {0: 1, 1: 5, 2: 17, 3: 25, 4: 18, 5: 6},
        "systemic_opioid_after": {"stopped": 23, "lt_100": 37, "ge_100": 12},
        "opioid_users_min": 60,  # IC-12
        "satisfied": 54,
        "deaths": 56,
        "censored": 16,
        "os_months": {"q1": 2, "median": 3, "q3": 6, "dp": 0},  # KM and descriptive
    },
}

CUTOFF = np.datetime64(TARGETS["cutoff"])  # last telephone follow-up; no later date

# ---------------------------------------------------------------------------
# Our own design choices ([A]): shapes the paper does not give
# ---------------------------------------------------------------------------
_LOWER_SITES = ("lumbosacral", "lower_limb", "perineum")
_UPPER_SITES = ("head_neck", "upper_limb", "chest")

DESIGN: dict = {
    "other_cancers": {"stomach": 3, "oesophagus": 3, "cervix": 3, "prostate": 3, "kidney": 2,
                      "bladder": 2, "ovary": 2, "bone": 1, "soft_tissue": 1, "head_neck": 2,
                      "biliary": 2, "unknown_primary": 2},
    "icd10": {"lung": ["C34.1", "C34.3", "C34.9", "C34.0", "C34.2"],
              "colorectal": ["C18.0", "C18.2", "C18.7", "C19", "C20"],
              "pancreas": ["C25.0", "C25.1", "C25.2", "C25.9"],
              "breast": ["C50.4", "C50.9"], "liver": ["C22.0", "C22.1"],
              "stomach": ["C16.0", "C16.3", "C16.9"], "oesophagus": ["C15.4", "C15.5", "C15.9"],
              "cervix": ["C53.9"], "prostate": ["C61"], "kidney": ["C64"], "bladder": ["C67.9"],
              "ovary": ["C56"], "bone": ["C41.4"], "soft_tissue": ["C49.5"],
              "head_neck": ["C10.9", "C11.9", "C13.9"], "biliary": ["C23", "C24.0"],
              "unknown_primary": ["C80.9"]},
    "female_only": ("breast", "cervix", "ovary"),
    "male_only": ("prostate",),
    # primary organ -> metastasis flag it must not carry (R-CD-03)
    "same_organ": {"liver": "liver", "lung": "lung", "bone": "bone"},
    "met_any_weight": {"lung": 1.2, "pancreas": 1.3, "breast": 1.2, "prostate": 1.3},
    "met_weight": {
        "bone": {"breast": 3, "prostate": 4, "lung": 2, "kidney": 2},
        "liver": {"colorectal": 3, "pancreas": 3, "stomach": 2, "biliary": 2, "breast": 1.5},
        "lung": {"colorectal": 1.5, "kidney": 2, "bone": 3, "soft_tissue": 3},
    },
    "met_other_sites": {"peritoneum": 6, "brain": 4, "adrenal": 3, "pleura": 3},
    "met_other_weight": {
        "peritoneum": ({"colorectal": 3, "stomach": 3, "ovary": 4, "pancreas": 3}, 0.5),
        "brain": ({"lung": 4, "breast": 3}, 0.5),
        "adrenal": ({"lung": 3, "kidney": 3}, 0.5),
        "pleura": ({"lung": 3, "breast": 3}, 0.5),
    },
    "max_bare_metastasis_rows": 14,  # met rows without bone/liver/lung (need an other site)
    "untreated_weight": {"pancreas": 2.0, "unknown_primary": 3.0, "liver": 1.5},
    "surgery_weight": {"colorectal": 3, "breast": 3, "stomach": 2, "cervix": 2, "ovary": 2,
                       "kidney": 2, "bladder": 2, "head_neck": 2, "bone": 2, "soft_tissue": 2,
                       "prostate": 1.5, "oesophagus": 1.5, "pancreas": 0.7, "lung": 0.8,
                       "unknown_primary": 0.2},
    "immuno_weight": {"lung": 3, "kidney": 2, "bladder": 2, "head_neck": 2, "liver": 1.5,
                      "oesophagus": 1.5, "stomach": 1.5},
    "uncovered_immuno_share": 0.2,
    # pinned sorted durations in days: (count, low, high); low == high is a pin
    "cancer_days": [(23, 30, 364), (2, 365, 365), (22, 366, 729), (2, 730, 730),
                    (22, 731, 1460), (2, 1461, 1461), (23, 1462, 3650)],
    "pain_days": [(23, 7, 60), (2, 61, 61), (22, 62, 182), (2, 183, 183),
                  (22, 184, 364), (2, 365, 365), (23, 366, 2190)],
    "cancer_duration_shift": {"breast": 0.8, "prostate": 0.6, "colorectal": 0.3, "cervix": 0.3,
                              "pancreas": -0.8, "liver": -0.3, "unknown_primary": -0.6,
                              "biliary": -0.5},
    "pain_duration_rho": 0.35,
    # pain sites: patients' main site (sums to 96), the rest of each target is a 2nd site
    "pain_main_site": {"upper_limb": 2, "head_neck": 5, "perineum": 6, "chest": 6,
                       "lower_limb": 11, "back": 16, "abdomen": 22, "lumbosacral": 28},
    "pain_weight": {
        "abdomen": {"pancreas": 5, "stomach": 4, "biliary": 4, "liver": 3, "colorectal": 2,
                    "ovary": 2},
        "lumbosacral": {"prostate": 3, "colorectal": 2, "cervix": 2, "bladder": 2},
        "back": {"pancreas": 3, "kidney": 2, "lung": 1.5},
        "lower_limb": {"cervix": 3, "bone": 3, "soft_tissue": 3, "prostate": 2},
        "perineum": {"colorectal": 5, "cervix": 5, "prostate": 4, "bladder": 4, "ovary": 2},
        "chest": {"lung": 4, "breast": 4, "oesophagus": 4},
        "head_neck": {"head_neck": 20},
        "upper_limb": {"lung": 4, "breast": 4},
    },
    # dermatome height of each pain site, steers the catheter tip (higher = more rostral)
    "pain_height": {"head_neck": 10, "upper_limb": 9, "chest": 7, "back": 5, "abdomen": 4.5,
                    "lumbosacral": 1.5, "lower_limb": 1, "perineum": 0.5},
    "tip_levels": {"T4": 1, "T5": 2, "T6": 19, "T7": 15, "T8": 16, "T9": 12, "T10": 10,
                   "T11": 9, "T12": 7, "L1": 2, "L2": 3},
    # the 5 non-cephalad catheters: (insertion interspace, tip at or below it)
    "caudad_catheters": [("T12-L1", "L1"), ("T12-L1", "L1"), ("L1-L2", "L2"), ("L1-L2", "L2"),
                         ("L1-L2", "L2")],
    "caudad_weight": {"perineum": 5, "lower_limb": 2, "lumbosacral": 1},
    "insertion_cephalad": {"L2-L3": 55, "L3-L4": 30, "L1-L2": 3, "L4-L5": 3},
    "tip_noise_sd": 1.2,
    "age_clip": (30, 88),
    "age_shift": {"breast": -0.5, "cervix": -0.7, "prostate": 0.8},
    "height_cm": {"F": (157.0, 5.5), "M": (168.0, 6.0)},
    "insurance": {"employee": 46, "resident": 40, "commercial": 3, "other": 3, "self_pay": 4},
    "skin_line": {"colorectal": ("enterostomy", 1.0), "bladder": ("urinary_catheter", 1.0),
                  "prostate": ("urinary_catheter", 0.8), "cervix": ("urinary_catheter", 0.6),
                  "pancreas": ("gallbladder_drain", 0.8), "biliary": ("gallbladder_drain", 1.0),
                  "liver": ("abdominal_drain", 0.6), "ovary": ("abdominal_drain", 0.6),
                  "stomach": ("gastrostomy", 1.0), "oesophagus": ("gastrostomy", 1.0),
                  "head_neck": ("gastrostomy", 1.0), "lung": ("thoracic_drain", 0.3),
                  "breast": ("thoracic_drain", 0.3)},
    "cart_max_adl": 35,
    # OME of the 66 users, sorted: x16-x18 = 100, x33-x34 = 290, x49-x51 = 633,
    # x25 <= 200 < x26 (41 > 200), x43 <= 500 < x44 (23 > 500); free values on a 5 mg grid
    "ome_users": [(15, 15, 95), (3, 100, 100), (7, 105, 200), (7, 205, 285), (2, 290, 290),
                  (9, 295, 500), (5, 505, 630), (3, 633, 633), (15, 640, 2200)],
    "users_in_followed": 66,  # >= 60 (IC-12); 66 keeps the non-user "ge_100" cases at 6
    "adjuvant_counts": {1: 19, 2: 9, 3: 3},
    "itt_affinity": {  # weight of an ITT drug given the pump drug
        "bupivacaine": {"bupivacaine": 20, "morphine+bupivacaine": 8},
        "hydromorphone": {"hydromorphone": 6},
        "morphine": {"morphine": 5, "morphine+bupivacaine": 5},
    },
    "itt_morphine_grid_p": [0.06, 0.30, 0.15, 0.22, 0.07, 0.10, 0.02, 0.04, 0.01, 0.03],
    "itt_hydromorphone_grid_p": [0.10, 0.30, 0.20, 0.15, 0.10, 0.05, 0.02, 0.04, 0.01, 0.03],
    "itt_bupivacaine_mg": [1.0, 1.5, 2.0],
    "pump_bupivacaine_mg_d": [2.0, 3.0, 4.0],
    "device_models": {"SynchroMed II 8637-40": 0.6, "SynchroMed II 8637-20": 0.4},
    "surgery_minutes": (140.0, 41.0, 60, 270),
    "risk": {"adl_per_10": -0.15, "metastasis": 0.4, "pancreas_liver": 0.3, "log2_ome": 0.2,
             "noise_sd": 0.5, "censor_noise_sd": 0.5},
    "censored_by_year": {2021: 3, 2022: 3, 2023: 10},
    "censored_last_implant": "2023-08-31",
    "death_days": {"median": 2.5 * DAYS_PER_MONTH, "sigma": 0.48, "min": 8},
    # 1-based order statistics of the 56 death times, their windows (days) and ties
    "death_windows": {18: (47, 74), 19: (47, 74), 36: (77, 104), 37: (77, 104),
                      54: (168, 194), 55: (168, 194)},
    "death_ties": {19: 18, 37: 36, 55: 54},
    "decedent_call_days": (14, 42),  # first telephone follow-up after discharge
    "explant_days": (320, 540),  # > 10 months after implant
    "postop_los": (2, 16),
    "preop_max": 30,
    "cost_total": {"base": 118000.0, "per_day": 3000.0, "noise_sd": 6000.0},
    "self_pay_mean": {"employee": 32000.0, "resident": 50000.0, "commercial": 20000.0,
                      "other": 45000.0},
    "self_pay_shape": 5.0,
    "unsatisfied_rho": 0.7,
    "refill_reason_p": 0.35,
    "family_respondent_p": 0.75,
}


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
def _permuted(rng: np.random.Generator, counts: dict) -> np.ndarray:
    """The exact multiset of labels given by ``counts``, randomly permuted."""
    labels = np.array([k for k, v in counts.items() for _ in range(v)])
    return labels[rng.permutation(len(labels))]


def _pick(rng: np.random.Generator, weights, k: int) -> np.ndarray:
    """``k`` distinct indices drawn with probability proportional to ``weights``."""
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=k, replace=False, p=w / w.sum())


def _mask(indices, n: int = N) -> np.ndarray:
    """Boolean mask of length ``n`` that is True at ``indices``."""
    m = np.zeros(n, dtype=bool)
    m[indices] = True
    return m


def _lookup(table: dict, keys, default: float = 1.0) -> np.ndarray:
    """Vectorised ``table.get(key, default)``."""
    return np.array([table.get(k, default) for k in keys], dtype=float)


def _rank_assign(values, score) -> np.ndarray:
    """Give the sorted ``values`` to patients in the order of ``score`` (largest to largest)."""
    values = np.sort(np.asarray(values))
    out = np.empty_like(values)
    out[np.argsort(score, kind="stable")] = values
    return out


def _latent(rng: np.random.Generator, signal, rho: float) -> np.ndarray:
    """Gaussian-copula score with correlation ``rho`` to the standardised ``signal``."""
    s = np.asarray(signal, dtype=float)
    z = (s - s.mean()) / s.std() if s.std() > 0 else np.zeros_like(s)
    return rho * z + np.sqrt(1.0 - rho**2) * rng.standard_normal(len(s))


def _top(score, k: int) -> np.ndarray:
    """Mask of the ``k`` largest scores."""
    return _mask(np.argsort(-np.asarray(score), kind="stable")[:k], len(score))


def _segments(rng: np.random.Generator, segments, step: int = 1) -> np.ndarray:
    """Sorted integers: pinned runs (low == high) and log-uniform fills on a ``step`` grid."""
    parts = []
    for count, low, high in segments:
        if low == high:
            parts.append(np.full(count, low))
        else:
            u = np.sort(rng.uniform(np.log(low), np.log(high), count))
            parts.append(np.clip(np.round(np.exp(u) / step) * step, low, high))
    return np.concatenate(parts).astype(np.int64)


def _fit_mean_sd(rng, x, low, high, mean: float, sd: float, tol: float) -> np.ndarray:
    """Move integer grid values by unit steps until mean and SD sit in the central band.

    ``x``, ``low``, ``high`` are per-element integer grid positions (``low == high``
    freezes an element). Each step is a single +-1 move or a paired +1/-1 move (which
    keeps the sum), drawn among the moves that reduce the squared normalised error,
    with probability proportional to the reduction. Stops once both
    ``|mean - target|`` and ``|sd - target|`` are within ``AIM * tol``.
    """
    x = np.asarray(x, dtype=np.int64).copy()
    low = np.broadcast_to(np.asarray(low, dtype=np.int64), x.shape)
    high = np.broadcast_to(np.asarray(high, dtype=np.int64), x.shape)
    x = np.clip(x, low, high)
    n = len(x)
    off_diagonal = ~np.eye(n, dtype=bool)

    def errors(s, q):
        var = np.maximum(q - s * s / n, 0.0) / (n - 1)
        return (s / n - mean) / tol, (np.sqrt(var) - sd) / tol

    for _ in range(50_000):
        s, q = float(x.sum()), float((x * x).sum())
        em, es = errors(s, q)
        if max(abs(em), abs(es)) <= AIM:
            return x
        up, down = x < high, x > low
        ds = np.concatenate([np.ones(n), -np.ones(n), np.zeros(n * n)])
        dq = np.concatenate([2 * x + 1, -2 * x + 1, (2 * (x[:, None] - x[None, :]) + 2).ravel()])
        ok = np.concatenate([up, down, (up[:, None] & down[None, :] & off_diagonal).ravel()])
        nm, ns = errors(s + ds, q + dq)
        gain = np.where(ok, em * em + es * es - (nm * nm + ns * ns), 0.0)
        if not (gain > 1e-12).any():
            raise RuntimeError("mean/SD fitter is stuck")
        k = rng.choice(len(gain), p=np.maximum(gain, 0) / np.maximum(gain, 0).sum())
        if k < 2 * n:
            x[k % n] += 1 if k < n else -1
        else:
            i, j = divmod(k - 2 * n, n)
            x[i] += 1
            x[j] -= 1
    raise RuntimeError("mean/SD fitter did not converge")


def _level_rank(level: str) -> int:
    """Craniocaudal rank of a vertebra: C1 = 1 ... T1 = 8 ... L1 = 20 ... S1 = 25."""
    offset = {"C": 0, "T": 7, "L": 19, "S": 24}[level[0]]
    return offset + int(level[1:])


def _affine(x, mean: float, sd: float) -> np.ndarray:
    """Shift and scale ``x`` to exactly ``mean`` and SD ``sd`` (ddof 1)."""
    x = np.asarray(x, dtype=float)
    return mean + sd * (x - x.mean()) / x.std(ddof=1)


def _shift_years(d: dt.date, years: int) -> dt.date:
    """``d`` moved by whole years (29 February becomes 28 February)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def _business_days(first: str, last: str) -> np.ndarray:
    """Weekdays from ``first`` to ``last`` inclusive (elective implants)."""
    days = np.arange(np.datetime64(first), np.datetime64(last) + 1)
    return days[np.is_busday(days)]


# ---------------------------------------------------------------------------
# Variable groups; each adds arrays (length N) to the column dict ``c``
# ---------------------------------------------------------------------------
def _cohort_skeleton(rng, c) -> None:
    """Follow-up status and implant year (overall split and split inside the 72)."""
    status = _permuted(rng, TARGETS["followup_status"])
    followed = status == "followed"
    year = np.empty(N, dtype=np.int64)
    year[followed] = _permuted(rng, TARGETS["implant_year_followed"])
    excluded = {y: n - TARGETS["implant_year_followed"][y] for y, n in TARGETS["implant_year"].items()}
    year[~followed] = _permuted(rng, excluded)
    # the explant (> 10 months after implant) must fall before the cut-off
    ex = np.flatnonzero(status == "explanted")[0]
    if year[ex] == 2023:
        partner = rng.choice(np.flatnonzero(~followed & (year < 2023)))
        year[ex], year[partner] = year[partner], year[ex]
    c["followup_status"], c["implant_year"] = status, year


def _cancer_and_sex(rng, c) -> None:
    """Primary cancer bucket and ICD-10 code, and sex consistent with sex-specific cancers."""
    counts = {k: v for k, v in TARGETS["cancer_site"].items() if k != "other"}
    site = _permuted(rng, {**counts, **DESIGN["other_cancers"]})
    c["cancer_site"] = site
    c["cancer_icd10"] = np.array([rng.choice(DESIGN["icd10"][s]) for s in site], dtype=object)
    female, male = np.isin(site, DESIGN["female_only"]), np.isin(site, DESIGN["male_only"])
    sex = np.where(female, "F", "M").astype(object)
    free = ~(female | male)
    sex[free] = _permuted(rng, {"F": TARGETS["sex"]["F"] - female.sum(),
                                "M": TARGETS["sex"]["M"] - male.sum()})
    c["sex"] = sex


def _metastases(rng, c) -> None:
    """Distant metastasis flags: exact column sums, never the primary's own organ."""
    site, t = c["cancer_site"], TARGETS["metastasis"]
    any_met = _mask(_pick(rng, _lookup(DESIGN["met_any_weight"], site), t["any"]))
    for _ in range(1000):
        flags = {}
        for organ in ("bone", "liver", "lung"):
            w = _lookup(DESIGN["met_weight"][organ], site) * any_met
            w[np.array([DESIGN["same_organ"].get(s) == organ for s in site])] = 0
            flags[organ] = _mask(_pick(rng, w, t[organ]))
        bare = any_met & ~(flags["bone"] | flags["liver"] | flags["lung"])
        if bare.sum() <= DESIGN["max_bare_metastasis_rows"]:
            break
    else:
        raise RuntimeError("no feasible metastasis pattern")
    other = [[] for _ in range(N)]
    left = dict(DESIGN["met_other_sites"])
    names = list(left)
    affinity = {o: _lookup(w, site, default)
                for o, (w, default) in DESIGN["met_other_weight"].items()}
    for i in np.flatnonzero(bare):  # every metastatic patient shows at least one site
        w = np.array([affinity[o][i] * left[o] for o in names])
        organ = names[rng.choice(len(names), p=w / w.sum())]
        other[i].append(organ)
        left[organ] -= 1
    for organ in names:
        free = any_met & np.array([organ not in o for o in other])
        for i in _pick(rng, affinity[organ] * free, left[organ]):
            other[i].append(organ)
    c["metastasis_any"] = any_met
    for organ in ("bone", "liver", "lung"):
        c[f"met_{organ}"] = flags[organ]
    c["met_other_sites"] = np.array([";".join(o for o in names if o in s) for s in other],
                                    dtype=object)
    c["met_other"] = np.array([bool(s) for s in other])


def _prior_treatment(rng, c) -> None:
    """Prior surgery / chemoradiotherapy / immunotherapy (85 non-empty rows) and pain procedures."""
    site, t = c["cancer_site"], TARGETS["prior_treatment"]
    untreated = _mask(_pick(rng, _lookup(DESIGN["untreated_weight"], site), N - t["any"]))
    treated = ~untreated
    chemo = _mask(_pick(rng, treated.astype(float), t["chemoradiotherapy"]))
    uncovered = treated & ~chemo
    immuno = uncovered & (rng.random(N) < DESIGN["uncovered_immuno_share"])
    surgery = uncovered & ~immuno
    surgery |= _mask(_pick(rng, _lookup(DESIGN["surgery_weight"], site) * (treated & ~surgery),
                           t["surgery"] - surgery.sum()))
    immuno |= _mask(_pick(rng, _lookup(DESIGN["immuno_weight"], site) * (treated & ~immuno),
                          t["immunotherapy"] - immuno.sum()))
    c["prior_surgery"], c["prior_chemoradiotherapy"], c["prior_immunotherapy"] = (
        surgery, chemo, immuno)
    c["prior_pain_intervention"] = _mask(_pick(rng, np.ones(N), TARGETS["prior_pain_intervention"]))


def _durations(rng, c) -> None:
    """Cancer and pain duration (days) with pinned quartiles; exactly 12 with pain first."""
    cancer_sorted = _segments(rng, DESIGN["cancer_days"])
    pain_sorted = _segments(rng, DESIGN["pain_days"])
    z = _lookup(DESIGN["cancer_duration_shift"], c["cancer_site"], 0.0) + rng.standard_normal(N)
    cancer = _rank_assign(cancer_sorted, z)
    pain = _rank_assign(pain_sorted, _latent(rng, z, DESIGN["pain_duration_rho"]))
    k = TARGETS["pain_preceded_cancer"]

    def penalty(p):
        return abs(int((p > cancer).sum()) - k) + 2 * int((p == cancer).sum())

    # swaps of pain values keep the marginal; accept those that do not worsen the penalty
    current = penalty(pain)
    for _ in range(100_000):
        if current == 0:
            break
        i, j = rng.choice(N, size=2, replace=False)
        trial = pain.copy()
        trial[i], trial[j] = pain[j], pain[i]
        if (new := penalty(trial)) <= current:
            pain, current = trial, new
    else:
        raise RuntimeError("cannot place the pain-before-cancer patients")
    c["cancer_days"], c["pain_days"] = cancer, pain


def _pain_sites(rng, c) -> None:
    """Multi-response pain sites: every patient >= 1, exact column sums (136 ticks)."""
    site, bone = c["cancer_site"], c["met_bone"]
    names = list(TARGETS["pain_site"])
    affinity = {}
    for s in names:
        w = _lookup(DESIGN["pain_weight"][s], site)
        if s in ("lumbosacral", "back", "lower_limb"):
            w = w * np.where(bone, 2.0, 1.0)
        if s == "head_neck":
            w = w * np.where([("brain" in o) for o in c["met_other_sites"]], 5.0, 1.0)
        affinity[s] = w
    has = {s: np.zeros(N, dtype=bool) for s in names}
    main = np.empty(N, dtype=object)
    free = np.ones(N, dtype=bool)
    for s, k in DESIGN["pain_main_site"].items():
        chosen = _pick(rng, affinity[s] * free, k)
        has[s][chosen], main[chosen], free[chosen] = True, s, False
    upper_main = np.isin(main, _UPPER_SITES)
    for s in names:  # second sites, preferably for one-site patients
        n_sites = sum(h.astype(int) for h in has.values())
        w = affinity[s] * ~has[s] * np.where(n_sites == 1, 1.0, 0.25)
        if s in _LOWER_SITES:
            w = w * ~upper_main
        has[s] |= _mask(_pick(rng, w, TARGETS["pain_site"][s] - has[s].sum()))
    for s in names:
        c[f"pain_site_{s}"] = has[s]


def _catheter(rng, c) -> None:
    """Insertion interspace, catheter direction and tip level (steered by pain height)."""
    has = {s: c[f"pain_site_{s}"] for s in DESIGN["pain_height"]}
    lower = np.logical_or.reduce([has[s] for s in _LOWER_SITES])
    upper = np.logical_or.reduce([has[s] for s in _UPPER_SITES])
    n_sites = sum(h.astype(int) for h in has.values())
    height = sum(h * DESIGN["pain_height"][s] for s, h in has.items()) / n_sites

    tip = np.empty(N, dtype=object)
    insertion = np.empty(N, dtype=object)
    w = np.max([has[s] * v for s, v in DESIGN["caudad_weight"].items()], axis=0) * ~upper
    caudad = _pick(rng, w, len(DESIGN["caudad_catheters"]))
    for i, (ins, level) in zip(caudad, DESIGN["caudad_catheters"], strict=True):
        insertion[i], tip[i] = ins, level
    cephalad = ~_mask(caudad)

    levels = dict(DESIGN["tip_levels"])
    for _, level in DESIGN["caudad_catheters"]:
        levels[level] -= 1
    ceph_levels = sorted((lv for lv, k in levels.items() for _ in range(k)), key=_level_rank)
    n_high = sum(1 for lv in ceph_levels if _level_rank(lv) <= _level_rank("T5"))
    score = height + rng.normal(0.0, DESIGN["tip_noise_sd"], N)
    # the T1-T5 tips go to the highest-scoring patients without lower-body pain
    high = np.flatnonzero(cephalad & ~lower)
    high = high[np.argsort(-score[high], kind="stable")[:n_high]]
    rest = np.flatnonzero(cephalad & ~_mask(high))
    rest = rest[np.argsort(-score[rest], kind="stable")]
    for i, level in zip(np.concatenate([high, rest]), ceph_levels, strict=True):
        tip[i] = level
    insertion[cephalad] = _permuted(rng, DESIGN["insertion_cephalad"])

    rank = np.array([_level_rank(t) for t in tip])
    c["catheter_tip_level"], c["insertion_level"] = tip, insertion
    c["catheter_cephalad"] = cephalad
    c["tip_group"] = np.where(rank <= _level_rank("T5"), "T1_T5",
                              np.where(rank <= _level_rank("T9"), "T6_T9", "T10_or_lower"))
    c["insertion_level_group"] = np.where(np.isin(insertion, ["L2-L3", "L3-L4"]), insertion,
                                          "other")


def _frailty(rng, c) -> None:
    """A latent frailty score shared by function, body size and survival."""
    site = c["cancer_site"]
    c["frailty"] = (0.5 * c["metastasis_any"] + 0.3 * np.isin(site, ["pancreas", "liver"])
                    + rng.standard_normal(N))


def _demographics(rng, c) -> None:
    """Age, BMI from whole-cm height and 0.5-kg weight, insurance."""
    t = TARGETS["age_years"]
    low, high = DESIGN["age_clip"]
    age = np.clip(np.round(rng.normal(t["mean"], t["sd"], N)), low, high)
    age = _fit_mean_sd(rng, age, low, high, t["mean"], t["sd"], 0.25 * 10 ** -t["dp"])
    shift = _lookup(DESIGN["age_shift"], c["cancer_site"], 0.0)
    c["age_years"] = _rank_assign(age, shift + rng.standard_normal(N))

    bmi10 = _bmi_values(rng)
    c["bmi10"] = _rank_assign(bmi10, _latent(rng, -c["frailty"], 0.5))
    c["height_cm"], c["weight_kg"] = _height_weight(rng, c["bmi10"], c["sex"])
    c["insurance_type"] = _permuted(rng, DESIGN["insurance"])


def _bmi_values(rng) -> np.ndarray:
    """96 BMI values x10: pinned min/max, exactly 29 under 18.5, mean/SD fitted."""
    t = TARGETS["bmi"]
    lo, hi, cut = round(t["min"] * 10), round(t["max"] * 10), 185
    n_under = TARGETS["underweight"]
    under = np.clip(np.round(rng.triangular(150, 184, 184, n_under - 1)), lo, cut - 1)
    over = np.clip(np.round(rng.normal(222, 24, N - n_under - 1)), cut, hi)
    x = np.concatenate([[lo], under, [hi], over])
    low = np.concatenate([[lo], np.full(n_under - 1, lo), [hi], np.full(N - n_under - 1, cut)])
    high = np.concatenate([[lo], np.full(n_under - 1, cut - 1), [hi], np.full(N - n_under - 1, hi)])
    return _fit_mean_sd(rng, x, low, high, t["mean"] * 10, t["sd"] * 10, 0.25)


def _bmi10_of(w2: int, h: int) -> int:
    """round_half_up(10 * BMI) for weight ``w2``/2 kg and height ``h`` cm, in exact integers."""
    return (100_000 * w2 + h * h) // (2 * h * h)


def _height_weight(rng, bmi10, sex):
    """Whole-cm heights and 0.5-kg weights whose half-up BMI equals ``bmi10``/10."""
    heights, weights = np.empty(N), np.empty(N)
    for i in range(N):
        mu, sd = DESIGN["height_cm"][sex[i]]
        h0 = int(np.clip(round(rng.normal(mu, sd)), 145, 188))
        for h in sorted(range(145, 191), key=lambda v: abs(v - h0)):
            w2 = round(bmi10[i] * h * h / 50_000)
            hits = [v for v in (w2 - 1, w2, w2 + 1) if _bmi10_of(v, h) == bmi10[i]]
            if hits:
                heights[i], weights[i] = h, hits[0] / 2
                break
        else:
            raise RuntimeError("no height/weight for BMI")
    return heights, weights


def _function(rng, c) -> None:
    """Barthel ADL (37 < 60), arrival mode, pressure sores and indwelling lines."""
    t = TARGETS["adl_barthel"]
    n_low = TARGETS["adl_lt_60"]
    low_units = rng.choice(np.arange(0, 12), n_low, p=np.arange(1, 13) / 78)
    high_units = rng.choice(np.arange(12, 21), N - n_low)
    units = np.concatenate([low_units, high_units])
    lo = np.concatenate([np.zeros(n_low), np.full(N - n_low, 12)])
    hi = np.concatenate([np.full(n_low, 11), np.full(N - n_low, 20)])
    units = _fit_mean_sd(rng, units, lo, hi, t["mean"] / 5, t["sd"] / 5, 0.25 / 5)
    adl = _rank_assign(units * 5, _latent(rng, -c["frailty"], 0.7))
    # no BMI < 16 with full ADL (R-DM-07): swap with a high-ADL patient of normal BMI
    for i in np.flatnonzero((c["bmi10"] < 160) & (adl == 100)):
        j = rng.choice(np.flatnonzero((adl >= 60) & (adl < 100) & (c["bmi10"] >= 160)))
        adl[i], adl[j] = adl[j], adl[i]
    c["adl_barthel"] = adl

    wheel = _top(_latent(rng, -adl, 0.8), TARGETS["arrival_wheelchair_or_cart"])
    c["arrival_wheelchair_or_cart"] = wheel
    c["arrival_mode"] = np.where(wheel & (adl <= DESIGN["cart_max_adl"]), "cart",
                                 np.where(wheel, "wheelchair", "walk")).astype(object)
    c["pressure_sore"] = _top(_latent(rng, -adl, 0.6), TARGETS["pressure_sore"])

    line_of = DESIGN["skin_line"]
    boost = np.array([line_of.get(s, ("urinary_catheter", 0.0))[1] for s in c["cancer_site"]])
    line = _top(_latent(rng, c["frailty"] + 2 * boost, 0.6), TARGETS["skin_compromising_line"])
    c["skin_compromising_line"] = line
    c["skin_line_type"] = np.array(
        [line_of.get(s, ("urinary_catheter", 0.0))[0] if has else None
         for s, has in zip(c["cancer_site"], line, strict=True)], dtype=object)


def _opioids(rng, c) -> None:
    """Baseline OME (pinned quartiles on the 66 users), adjuvants, reason, baseline NRS."""
    followed = c["followup_status"] == "followed"
    k_followed = DESIGN["users_in_followed"]
    users = _mask(_pick(rng, followed.astype(float), k_followed))
    if TARGETS["opioid_users"] > k_followed:
        users |= _mask(_pick(rng, (~followed).astype(float), TARGETS["opioid_users"] - k_followed))
    ome = np.zeros(N)
    ome[users] = rng.permutation(_segments(rng, DESIGN["ome_users"], step=5))
    c["systemic_opioid_user"], c["baseline_ome_mg_per_day"] = users, ome

    adjuvant = dict(DESIGN["adjuvant_counts"])
    adjuvant[0] = N - sum(adjuvant.values())
    c["n_adjuvant_drugs"] = _permuted(rng, adjuvant).astype(np.int64)
    t = TARGETS["implant_reason"]
    side = _mask(_pick(rng, np.log1p(ome) * users, t["side_effects"]))
    c["implant_reason"] = np.where(side, "side_effects", "inadequate_relief").astype(object)

    counts = TARGETS["followed"]["baseline_nrs_counts"]
    nrs = np.empty(N, dtype=np.int64)
    nrs[followed] = _permuted(rng, counts)
    p = np.array(list(counts.values()), dtype=float)
    nrs[~followed] = rng.choice(list(counts), size=(~followed).sum(), p=p / p.sum())
    c["baseline_nrs"] = nrs


def _itt_and_pump(rng, c) -> None:
    """Screening trials, pump drug and initial dose, device, operation length."""
    idds = _permuted(rng, TARGETS["idds_drug"]).astype(object)
    count = _permuted(rng, TARGETS["itt_count"]).astype(np.int64)
    drug = np.full(N, None, dtype=object)
    remaining = count > 0
    for name in ("bupivacaine", "hydromorphone", "morphine"):
        w = _lookup(DESIGN["itt_affinity"][name], idds) * remaining
        chosen = _pick(rng, w, TARGETS["itt_drug"][name])
        drug[chosen], remaining[chosen] = name, False
    dose = np.full(N, np.nan)
    for name, step in (("morphine", 0.05), ("hydromorphone", 0.01)):
        t = TARGETS[f"itt_dose_{name}_mg"]
        who = drug == name
        units = rng.choice(np.arange(1, 11), who.sum(), p=DESIGN[f"itt_{name}_grid_p"])
        units = _fit_mean_sd(rng, units, 1, 10, t["mean"] / step, t["sd"] / step,
                             0.25 * 10 ** -t["dp"] / step)
        dose[who] = np.round(units * step, 2)
    bupi = drug == "bupivacaine"
    dose[bupi] = rng.choice(DESIGN["itt_bupivacaine_mg"], bupi.sum())
    c["idds_drug"], c["itt_count"], c["itt_drug"], c["itt_dose_mg"] = idds, count, drug, dose
    c["initial_daily_dose_mg"] = _initial_dose(rng, idds, c["baseline_ome_mg_per_day"])

    models = DESIGN["device_models"]
    c["device_model"] = rng.choice(list(models), N, p=list(models.values())).astype(object)
    mu, sd, low, high = DESIGN["surgery_minutes"]
    t = TARGETS["surgery_duration_hours"]
    minutes = np.clip(np.round(rng.normal(mu, sd, N)), low, high)
    c["surgery_minutes"] = _fit_mean_sd(rng, minutes, low, high, t["mean"] * 60, t["sd"] * 60,
                                        0.25 * 10 ** -t["dp"] * 60)


def _initial_dose(rng, idds, ome) -> np.ndarray:
    """First pump daily dose (mg/d) on the clinical grid, tied to the systemic OME.

    Users keep OME / IT-morphine-equivalent within [50, 1000] (R-PU-05: hydromorphone
    counts 5x); non-users start in the PACC range. Morphine alone (n = 61) and
    hydromorphone are fitted to the published mean and SD.
    """
    dose = np.zeros(N)
    user = ome > 0
    # drug: (grid step, OME divisor of the starting dose, hard low, hard high, naive range)
    spec = {"morphine": (0.05, 300, 0.1, 5.0, (0.1, 0.5)),
            "morphine+bupivacaine": (0.05, 300, 0.1, 5.0, (0.1, 0.5)),
            "hydromorphone": (0.01, 2000, 0.02, 0.8, (0.02, 0.15))}
    for name, (step, divisor, hard_lo, hard_hi, naive) in spec.items():
        who = idds == name
        potency = 5 if name == "hydromorphone" else 1
        lo = np.where(user, np.maximum(hard_lo, ome / (1000 * potency)), naive[0])
        hi = np.where(user, np.minimum(hard_hi, ome / (50 * potency)), naive[1])
        lo_u, hi_u = np.ceil(lo[who] / step - 1e-9), np.floor(hi[who] / step + 1e-9)
        base = np.where(user, ome / divisor * rng.uniform(0.6, 1.4, N),
                        rng.uniform(naive[0], naive[1], N))
        units = np.clip(np.round(base[who] / step), lo_u, hi_u)
        key = {"morphine": "initial_dose_morphine_mg",
               "hydromorphone": "initial_dose_hydromorphone_mg"}.get(name)
        if key:
            t = TARGETS[key]
            units = _fit_mean_sd(rng, units, lo_u, hi_u, t["mean"] / step, t["sd"] / step,
                                 0.25 * 10 ** -t["dp"] / step)
        dose[who] = np.round(units * step, 2)
    alone = idds == "bupivacaine"
    dose[alone] = rng.choice(DESIGN["pump_bupivacaine_mg_d"], alone.sum())
    return dose


def _death_days(rng) -> np.ndarray:
    """Sorted death times (days) of the 56 decedents with windowed, tie-pinned quartiles."""
    n, spec = TARGETS["followed"]["deaths"], DESIGN["death_days"]
    inv = NormalDist().inv_cdf
    for _ in range(1000):
        u = (np.arange(n) + rng.uniform(1e-9, 1.0, n)) / n
        z = np.array([inv(min(v, 1 - 1e-12)) for v in u])
        d = np.sort(np.maximum(spec["min"], np.round(spec["median"] * np.exp(spec["sigma"] * z))))
        if all(lo <= d[k - 1] <= hi for k, (lo, hi) in DESIGN["death_windows"].items()):
            for k, same in DESIGN["death_ties"].items():
                d[k - 1] = d[same - 1]
            return d.astype(np.int64)
    raise RuntimeError("no death times inside the quartile windows")


def _survival(rng, c) -> None:
    """Censoring, implant dates and death times for the follow-up set (risk-score copula)."""
    r = DESIGN["risk"]
    status, year = c["followup_status"], c["implant_year"]
    ome = c["baseline_ome_mg_per_day"]
    log_ome = np.where(ome > 0, np.log2(np.maximum(ome, 1) / 290), 0.0)
    risk = (r["adl_per_10"] * c["adl_barthel"] / 10 + r["metastasis"] * c["metastasis_any"]
            + r["pancreas_liver"] * np.isin(c["cancer_site"], ["pancreas", "liver"])
            + r["log2_ome"] * log_ome + rng.normal(0, r["noise_sd"], N))
    followed = status == "followed"
    censored = np.zeros(N, dtype=bool)
    pref = -risk + rng.normal(0, r["censor_noise_sd"], N)  # low risk survives
    for y, k in DESIGN["censored_by_year"].items():
        pool = np.flatnonzero(followed & (year == y))
        censored[pool[np.argsort(-pref[pool], kind="stable")[:k]]] = True
    decedent = followed & ~censored

    implant = np.empty(N, dtype="datetime64[D]")
    for y in np.unique(year):
        for group, last in ((censored, DESIGN["censored_last_implant"]),
                            (~censored, f"{y}-12-31")):
            who = (year == y) & group
            last = min(last, f"{y}-12-31")
            implant[who] = rng.choice(_business_days(f"{y}-01-01", last), who.sum())
    days = np.zeros(N, dtype=np.int64)
    idx = np.flatnonzero(decedent)
    days[idx] = _assign_death_days(_death_days(rng), risk[idx],
                                   (CUTOFF - implant[idx]).astype(np.int64))
    c["implant"], c["censored"], c["decedent"], c["death_days"] = (
        implant, censored, decedent, days)


def _assign_death_days(d_sorted, risk, cap) -> np.ndarray:
    """Shortest times to the highest risk; swap to keep every death on or before the cut-off."""
    days = np.empty(len(risk), dtype=np.int64)
    days[np.argsort(-risk, kind="stable")] = d_sorted
    rank = np.argsort(np.argsort(-risk, kind="stable"))
    while (bad := np.flatnonzero(days > cap)).size:
        i = bad[np.argmax(days[bad] - cap[bad])]
        ok = np.flatnonzero((days <= cap[i]) & (days[i] <= cap))
        if ok.size == 0:
            raise RuntimeError("cannot place the deaths before the cut-off")
        j = ok[np.argmin(np.abs(rank[ok] - rank[i]))]
        days[i], days[j] = days[j], days[i]
    return days


def _stay(rng, c) -> None:
    """Pre- and post-operative stay; discharge before any death (peri-op death: POD 1)."""
    periop = c["followup_status"] == "periop_death"
    t_post, t_total = TARGETS["postop_los_days"], TARGETS["los_days"]
    lo, hi = DESIGN["postop_los"]
    post = np.clip(rng.negative_binomial(12, 2 / 3, N), lo, hi)
    post[periop] = 1
    low, high = np.where(periop, 1, lo), np.where(periop, 1, hi)
    post = _fit_mean_sd(rng, post, low, high, t_post["mean"], t_post["sd"], 0.25)
    death, decedent = c["death_days"], c["decedent"]
    while (bad := np.flatnonzero(decedent & (post >= death))).size:
        i = bad[0]
        ok = np.flatnonzero(~periop & (post < death[i]) & (~decedent | (post[i] < death)))
        j = rng.choice(ok)
        post[i], post[j] = post[j], post[i]
    pre_min = 1 + c["itt_count"]  # room for the screening trials on the same admission
    pre = pre_min + rng.negative_binomial(1, 0.25, N)
    total = _fit_mean_sd(rng, np.minimum(post + pre, post + DESIGN["preop_max"]), post + pre_min,
                         post + DESIGN["preop_max"], t_total["mean"], t_total["sd"], 0.25)
    c["postop_los_days"], c["los_days"] = post, total


def _dates(rng, c) -> None:
    """Every calendar date, and the survival columns derived from them."""
    implant = c["implant"]
    status = c["followup_status"]
    admission = implant - (c["los_days"] - c["postop_los_days"])
    discharge = implant + c["postop_los_days"]
    death = np.full(N, np.datetime64("NaT"), dtype="datetime64[D]")
    death[c["decedent"]] = implant[c["decedent"]] + c["death_days"][c["decedent"]]
    periop = status == "periop_death"
    death[periop] = discharge[periop]

    explant = np.full(N, np.datetime64("NaT"), dtype="datetime64[D]")
    ex = status == "explanted"
    lo, hi = DESIGN["explant_days"]
    explant[ex] = [d + min(int(rng.integers(lo, hi + 1)), int((CUTOFF - d).astype(int)))
                   for d in implant[ex]]

    last = discharge.copy()
    last[c["censored"]] = CUTOFF
    last[ex] = explant[ex]
    call = discharge + rng.integers(DESIGN["decedent_call_days"][0],
                                    DESIGN["decedent_call_days"][1] + 1, N)
    reached_alive = c["decedent"] & (call < death)
    last[reached_alive] = call[reached_alive]

    has_death = ~np.isnat(death)
    end = np.where(has_death, death, last)
    c["os_days"] = (end - implant).astype(np.int64)
    c["os_event"] = has_death.astype(np.int64)
    c["vital_status_at_cutoff"] = np.where(
        has_death, "dead", np.where(status == "lost_or_refused", None, "alive")).astype(object)
    c["admission_date"], c["discharge_date"] = admission, discharge
    c["death_date"], c["explant_date"], c["last_contact_date"] = death, explant, last
    c["cancer_dx_date"] = implant - c["cancer_days"]
    c["pain_onset_date"] = implant - c["pain_days"]
    c["birth_date"] = np.array([_birth_date(rng, d.astype(dt.date), int(a))
                                for d, a in zip(implant, c["age_years"], strict=True)],
                               dtype="datetime64[D]")


def _birth_date(rng, implant: dt.date, age: int) -> dt.date:
    """A birth date whose floor age at ``implant`` is ``age``."""
    first = _shift_years(implant, -(age + 1)) + dt.timedelta(days=1)
    last = _shift_years(implant, -age)
    return first + dt.timedelta(days=int(rng.integers(0, (last - first).days + 1)))


def _costs(rng, c) -> None:
    """Total and self-paid charges (CNY, cents) at the published mean and SD."""
    spec, t, t_self = DESIGN["cost_total"], TARGETS["total_charge_cny"], TARGETS["self_pay_cny"]
    base = spec["base"] + spec["per_day"] * c["los_days"] + rng.normal(0, spec["noise_sd"], N)
    total = np.round(_affine(base, t["mean"], t["sd"]), 2)
    self_pay_patient = c["insurance_type"] == "self_pay"
    fixed = total[self_pay_patient]  # self-paying patients pay the whole bill
    n_free = N - len(fixed)
    s = N * t_self["mean"] - fixed.sum()
    q = (N - 1) * t_self["sd"] ** 2 + N * t_self["mean"] ** 2 - (fixed**2).sum()
    free_mean = s / n_free
    free_sd = np.sqrt((q - n_free * free_mean**2) / (n_free - 1))
    scale = _lookup(DESIGN["self_pay_mean"], c["insurance_type"][~self_pay_patient])
    shape = DESIGN["self_pay_shape"]
    for _ in range(1000):
        draw = rng.gamma(shape, scale / shape)
        free = np.round(_affine(draw, free_mean, free_sd), 2)
        if (free >= 0).all() and (free <= total[~self_pay_patient]).all():
            break
    else:
        raise RuntimeError("no feasible self-pay draw")
    self_pay = total.copy()
    self_pay[~self_pay_patient] = free
    c["total_charge_cny"], c["self_pay_cny"] = total, self_pay


def _complications(rng, c) -> None:
    """Adverse events of the index admission, poor wound healing, explant."""
    status = c["followup_status"]
    eligible = (status != "periop_death").astype(float)
    t = TARGETS["complications"]
    for name in ("pdph", "fever", "urinary_retention_constipation"):
        c[f"comp_{name}"] = _mask(_pick(rng, eligible, t[name]))
    c["comp_infection"] = np.zeros(N, dtype=bool)
    c["in_hospital_death"] = status == "periop_death"
    c["explanted"] = status == "explanted"
    c["comp_poor_wound_healing"] = c["explanted"].copy()
    c["explant_reason"] = np.where(c["explanted"], "poor wound healing", None).astype(object)


def _followup_answers(rng, c) -> None:
    """Follow-up NRS, satisfaction, systemic opioid use after IDDS, respondent."""
    tf = TARGETS["followed"]
    f = c["followup_status"] == "followed"
    idx = np.flatnonzero(f)
    nrs = np.full(N, -1, dtype=np.int64)
    nrs[idx] = _rank_assign(_permuted(rng, tf["followup_nrs_counts"]),
                            _latent(rng, c["baseline_nrs"][idx], 0.3))
    c["followup_nrs"] = nrs

    after = np.full(N, None, dtype=object)
    users = f & c["systemic_opioid_user"]
    after[f & ~users] = "ge_100"  # "stopped" and "< 100 mg" need a baseline user
    k = tf["systemic_opioid_after"]
    log_ome = np.log(np.maximum(c["baseline_ome_mg_per_day"], 1))
    ui = np.flatnonzero(users)
    high = ui[_top(log_ome[ui] + rng.normal(0, 0.6, ui.size), k["ge_100"] - (f & ~users).sum())]
    after[high] = "ge_100"
    rest = np.setdiff1d(ui, high)
    stopped = rest[_top(-log_ome[rest] + rng.normal(0, 0.8, rest.size), k["stopped"])]
    after[stopped] = "stopped"
    after[np.setdiff1d(rest, stopped)] = "lt_100"
    c["systemic_opioid_after"] = after

    drop = (c["baseline_nrs"] - nrs)[idx]
    signal = (drop - drop.mean()) / drop.std() + _z(np.log(c["os_days"][idx]))
    unhappy = idx[_top(-_latent(rng, signal, DESIGN["unsatisfied_rho"]), len(idx) - tf["satisfied"])]
    satisfied = np.full(N, None, dtype=object)
    satisfied[idx] = True
    satisfied[unhappy] = False
    c["satisfied"] = satisfied
    reasons = np.full(N, None, dtype=object)
    for i in unhappy:
        why = []
        if nrs[i] >= 4 or c["baseline_nrs"][i] - nrs[i] <= 3:
            why.append("poor pain control")
        if rng.random() < DESIGN["refill_reason_p"]:
            why.append("refill inconvenience")
        if c["os_event"][i] and c["os_days"][i] < 90:
            why.append("short survival")
        reasons[i] = "; ".join(why or ["refill inconvenience"])
    c["dissatisfaction_reason"] = reasons

    respondent = np.full(N, None, dtype=object)
    only_death_call = c["decedent"] & (c["last_contact_date"] == c["discharge_date"])
    family = only_death_call | (rng.random(N) < DESIGN["family_respondent_p"])
    respondent[idx] = np.where(family[idx], "family", "patient")
    c["respondent"] = respondent


def _z(x) -> np.ndarray:
    """Standardised values."""
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


def _identifiers(rng, c) -> np.ndarray:
    """Operation times and ids; returns the row order (by incision time)."""
    start = (c["implant"].astype("datetime64[m]") + np.timedelta64(8 * 60, "m")
             + rng.integers(0, 73, N) * np.timedelta64(5, "m"))
    c["implant_start_time"] = start
    c["implant_end_time"] = start + c["surgery_minutes"].astype("timedelta64[m]")
    order = np.argsort(start, kind="stable")
    ids = set()
    while len(ids) < N:
        ids.add(int(rng.integers(1_000_000, 30_000_000)))
    mrn = np.array([f"{v:010d}" for v in rng.permutation(sorted(ids))], dtype=object)
    c["patient_id"] = mrn
    admission = np.empty(N, dtype=object)
    implant_id = np.empty(N, dtype=object)
    serial = 21_000_000 + np.cumsum(rng.integers(50, 400, N))
    per_year: dict[int, int] = {}
    for pos, i in enumerate(order):
        y = int(c["implant_year"][i])
        per_year[y] = per_year.get(y, 0) + 1
        admission[i] = f"ZY{serial[pos]:08d}"
        implant_id[i] = f"IMP{y}{per_year[y]:03d}"
    c["admission_id"], c["implant_id"] = admission, implant_id
    return order


# ---------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------
_DATE_COLUMNS = ["implant_date", "admission_date", "discharge_date", "cancer_dx_date",
                 "pain_onset_date", "explant_date", "death_date", "last_contact_date",
                 "birth_date"]


def _frame(c, order) -> pd.DataFrame:
    """Assemble the columns in the documented order with their documented types."""
    c["implant_date"] = c["implant"]
    c["bmi"] = c["bmi10"] / 10
    c["cancer_duration_months"] = c["cancer_days"] / DAYS_PER_MONTH
    c["pain_duration_months"] = c["pain_days"] / DAYS_PER_MONTH
    c["pain_preceded_cancer"] = c["pain_onset_date"] < c["cancer_dx_date"]
    c["surgery_duration_hours"] = c["surgery_minutes"] / 60
    c["os_months"] = c["os_days"] / DAYS_PER_MONTH
    data = {}
    for name in COLUMNS + EXTRA_COLUMNS:
        v = np.asarray(c[name])[order]
        if name in _DATE_COLUMNS or name in ("implant_start_time", "implant_end_time"):
            v = pd.to_datetime(v.astype("datetime64[ns]"))
        elif name == "followup_nrs":
            v = pd.array(np.where(v < 0, None, v), dtype="Int64")
        elif name == "satisfied":
            v = pd.array(v, dtype="boolean")
        elif v.dtype.kind == "U":
            v = v.astype(object)
        data[name] = v
    return pd.DataFrame(data)


COLUMNS = [
    "patient_id", "implant_id", "implant_date", "implant_year", "admission_date",
    "discharge_date", "age_years", "sex", "insurance_type", "height_cm", "weight_kg", "bmi",
    "adl_barthel", "pressure_sore", "skin_compromising_line", "arrival_wheelchair_or_cart",
    "cancer_site", "cancer_dx_date", "cancer_duration_months", "metastasis_any", "met_bone",
    "met_liver", "met_lung", "met_other", "pain_onset_date", "pain_duration_months",
    "pain_preceded_cancer",
    *[f"pain_site_{s}" for s in TARGETS["pain_site"]],
    "prior_surgery", "prior_chemoradiotherapy", "prior_immunotherapy", "prior_pain_intervention",
    "baseline_ome_mg_per_day", "systemic_opioid_user", "n_adjuvant_drugs", "baseline_nrs",
    "implant_reason", "itt_count", "itt_drug", "itt_dose_mg", "surgery_duration_hours",
    "insertion_level", "insertion_level_group", "catheter_tip_level", "tip_group",
    "catheter_cephalad", "device_model", "idds_drug", "initial_daily_dose_mg", "los_days",
    "postop_los_days", "total_charge_cny", "self_pay_cny", "comp_pdph", "comp_fever",
    "comp_urinary_retention_constipation", "comp_infection", "comp_poor_wound_healing",
    "in_hospital_death", "explanted", "explant_date", "followup_status", "followup_nrs",
    "satisfied", "systemic_opioid_after", "death_date", "last_contact_date", "os_days",
    "os_event", "os_months",
]
EXTRA_COLUMNS = [
    "admission_id", "birth_date", "cancer_icd10", "met_other_sites", "arrival_mode",
    "skin_line_type", "implant_start_time", "implant_end_time", "explant_reason", "respondent",
    "dissatisfaction_reason", "vital_status_at_cutoff",
]


def build_latent(seed: int = 11) -> pd.DataFrame:
    """The 96-patient latent truth table for ``seed`` (rows ordered by implant time)."""
    rng = np.random.default_rng(seed)
    c: dict = {}
    for step in (_cohort_skeleton, _cancer_and_sex, _metastases, _prior_treatment, _durations,
                 _pain_sites, _catheter, _frailty, _demographics, _function, _opioids,
                 _itt_and_pump, _survival, _stay, _dates, _costs, _complications,
                 _followup_answers):
        step(rng, c)
    order = _identifiers(rng, c)
    return _frame(c, order)


# ---------------------------------------------------------------------------
# Achieved statistics
# ---------------------------------------------------------------------------
def _mean_sd(x) -> dict:
    """n, mean and SD (ddof 1)."""
    x = np.asarray(x, dtype=float)
    return {"n": int(len(x)), "mean": float(x.mean()), "sd": float(x.std(ddof=1))}


def _tukey_hinges(x) -> list[float]:
    """Lower hinge, median, upper hinge (halves include the median when n is odd)."""
    x = np.sort(np.asarray(x, dtype=float))
    half = (len(x) + 1) // 2
    return [float(np.median(x[:half])), float(np.median(x)), float(np.median(x[-half:]))]


def _quartiles(x) -> dict:
    """Quartiles by SPSS (weibull, reported as q1/median/q3), type 7 and Tukey hinges."""
    x = np.asarray(x, dtype=float)
    w = np.percentile(x, [25, 50, 75], method="weibull")
    t7 = np.percentile(x, [25, 50, 75], method="linear")
    return {"n": int(len(x)), "q1": float(w[0]), "median": float(w[1]), "q3": float(w[2]),
            "type7": [float(v) for v in t7], "hinges": _tukey_hinges(x)}


def _km_quartiles(time, event) -> dict:
    """Product-limit estimate in exact fractions; first times with S <= 0.75, 0.5, 0.25."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=int)
    s = Fraction(1)
    out = {}
    for u in np.unique(time[event == 1]):
        at_risk = int((time >= u).sum())
        deaths = int(((time == u) & (event == 1)).sum())
        s *= Fraction(at_risk - deaths, at_risk)
        for key, p in (("q1", Fraction(3, 4)), ("median", Fraction(1, 2)), ("q3", Fraction(1, 4))):
            if key not in out and s <= p:
                out[key] = float(u)
    return out


def _counts(series, keys) -> dict:
    """Counts of each key in ``series``."""
    return {k: int((series == k).sum()) for k in keys}


def achieved_stats(df: pd.DataFrame) -> dict:
    """Every Appendix A statistic recomputed from a latent (or mart-shaped) frame.

    Keys mirror ``TARGETS``: counts as ints, mean/SD entries as {n, mean, sd},
    median/IQR entries as {n, q1, median, q3 (SPSS weibull), type7, hinges}. Under
    ``followed``, ``os_months`` holds the KM quartiles and ``os_months_descriptive``
    the quartiles of the 72 observed times.
    """
    t = TARGETS
    fol = df[df["followup_status"] == "followed"]
    users = df[df["systemic_opioid_user"]]
    top5 = [k for k in t["cancer_site"] if k != "other"]
    site_counts = _counts(df["cancer_site"], top5)
    site_counts["other"] = len(df) - sum(site_counts.values())
    itt_dose = {d: df.loc[df["itt_drug"] == d, "itt_dose_mg"] for d in ("morphine", "hydromorphone")}
    init = {d: df.loc[df["idds_drug"] == d, "initial_daily_dose_mg"]
            for d in ("morphine", "hydromorphone")}
    insertion = _counts(df["insertion_level_group"], t["insertion_level_group"])
    return {
        "n": int(len(df)),
        "latest_date": str(pd.Timestamp(max(df[c].max() for c in _DATE_COLUMNS if c in df)).date()),
        "followup_status": _counts(df["followup_status"], t["followup_status"]),
        "implant_year": _counts(df["implant_year"], t["implant_year"]),
        "implant_year_followed": _counts(fol["implant_year"], t["implant_year"]),
        "age_years": _mean_sd(df["age_years"]),
        "sex": _counts(df["sex"], t["sex"]),
        "bmi": {**_mean_sd(df["bmi"]), "min": float(df["bmi"].min()),
                "max": float(df["bmi"].max())},
        "underweight": int((df["bmi"] < 18.5).sum()),
        "adl_barthel": _mean_sd(df["adl_barthel"]),
        "adl_lt_60": int((df["adl_barthel"] < 60).sum()),
        "arrival_wheelchair_or_cart": int(df["arrival_wheelchair_or_cart"].sum()),
        "pressure_sore": int(df["pressure_sore"].sum()),
        "skin_compromising_line": int(df["skin_compromising_line"].sum()),
        "cancer_site": site_counts,
        "cancer_duration_months": _quartiles(df["cancer_duration_months"]),
        "metastasis": {"any": int(df["metastasis_any"].sum()),
                       **{o: int(df[f"met_{o}"].sum()) for o in ("bone", "liver", "lung")}},
        "prior_treatment": {
            **{k: int(df[f"prior_{k}"].sum())
               for k in ("surgery", "chemoradiotherapy", "immunotherapy")},
            "any": int(df[["prior_surgery", "prior_chemoradiotherapy",
                           "prior_immunotherapy"]].any(axis=1).sum())},
        "pain_site": {s: int(df[f"pain_site_{s}"].sum()) for s in t["pain_site"]},
        "pain_duration_months": _quartiles(df["pain_duration_months"]),
        "pain_preceded_cancer": int(df["pain_preceded_cancer"].sum()),
        "opioid_users": int(df["systemic_opioid_user"].sum()),
        "ome_users": _quartiles(users["baseline_ome_mg_per_day"]),
        "ome_all": _quartiles(df["baseline_ome_mg_per_day"]),
        "ome_gt_200": int((df["baseline_ome_mg_per_day"] > 200).sum()),
        "ome_gt_500": int((df["baseline_ome_mg_per_day"] > 500).sum()),
        "adjuvant_any": int((df["n_adjuvant_drugs"] >= 1).sum()),
        "prior_pain_intervention": int(df["prior_pain_intervention"].sum()),
        "implant_reason": _counts(df["implant_reason"], t["implant_reason"]),
        "itt_count": _counts(df["itt_count"], t["itt_count"]),
        "itt_drug": _counts(df["itt_drug"], t["itt_drug"]),
        "itt_dose_morphine_mg": _mean_sd(itt_dose["morphine"]),
        "itt_dose_hydromorphone_mg": _mean_sd(itt_dose["hydromorphone"]),
        "surgery_duration_hours": _mean_sd(df["surgery_duration_hours"]),
        "insertion_level_group": insertion,
        "catheter_cephalad": int(df["catheter_cephalad"].sum()),
        "tip_group": _counts(df["tip_group"], t["tip_group"]),
        "tip_T6": int((df["catheter_tip_level"] == "T6").sum()),
        "idds_drug": _counts(df["idds_drug"], t["idds_drug"]),
        "initial_dose_morphine_mg": _mean_sd(init["morphine"]),
        "initial_dose_morphine_or_combination_mg": _mean_sd(df.loc[
            df["idds_drug"].isin(["morphine", "morphine+bupivacaine"]), "initial_daily_dose_mg"]),
        "initial_dose_hydromorphone_mg": _mean_sd(init["hydromorphone"]),
        "los_days": _mean_sd(df["los_days"]),
        "postop_los_days": _mean_sd(df["postop_los_days"]),
        "total_charge_cny": _mean_sd(df["total_charge_cny"]),
        "self_pay_cny": _mean_sd(df["self_pay_cny"]),
        "complications": {
            **{k: int(df[f"comp_{k}"].sum())
               for k in ("pdph", "fever", "urinary_retention_constipation", "poor_wound_healing")},
            "in_hospital_death": int(df["in_hospital_death"].sum())},
        "followed": {
            "n": int(len(fol)),
            "baseline_nrs": _mean_sd(fol["baseline_nrs"]),
            "baseline_nrs_counts": {int(k): int(v) for k, v in
                                    fol["baseline_nrs"].value_counts().sort_index().items()},
            "followup_nrs": _mean_sd(fol["followup_nrs"].astype(float)),
            "followup_nrs_counts": {int(k): int(v) for k, v in
                                    fol["followup_nrs"].value_counts().sort_index().items()},
            "systemic_opioid_after": _counts(fol["systemic_opioid_after"],
                                             t["followed"]["systemic_opioid_after"]),
            "opioid_users": int(fol["systemic_opioid_user"].sum()),
            "satisfied": int((fol["satisfied"] == True).sum()),  # noqa: E712 (nullable)
            "deaths": int(fol["os_event"].sum()),
            "censored": int((fol["os_event"] == 0).sum()),
            "os_months": _km_quartiles(fol["os_months"], fol["os_event"]),
            "os_months_descriptive": _quartiles(fol["os_months"]),
        },
    }
