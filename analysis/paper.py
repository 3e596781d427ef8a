"""What the seed paper prints, as data.

Wang W, Shi Q, Cao Y, Fan B, Yang Y. *Intrathecal drug delivery systems for cancer
pain: a retrospective analysis at a single tertiary medical center in China.*
Heliyon 2024;10:e34522 (SPSS 22.0; 96 implants 2021-2023; 72 with follow-up).

Every number the paper prints that this pipeline recomputes is one
:class:`PaperValue`, keyed by a stable id. Printed numbers are kept as *strings*
so that their printed precision is part of the record ("3.13" has two decimals,
"75" none): comparisons round our value at exactly that precision.

Where the paper is internally inconsistent, or its denominator or definition is
ambiguous, the value carries the id of the inconsistency (``IC-01`` ...
``IC-17``, described in :data:`INCONSISTENCIES`). Such values are reported
side by side with ours and flagged, never silently "fixed".

This module holds constants only; it reads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from .formatting import EN_DASH, PLUS_MINUS, decimals_of, pct_half_up, round_half_up

__all__ = [
    "INCONSISTENCIES",
    "PAPER",
    "PaperValue",
    "compare",
    "paper_value",
]

#: The paper's internal inconsistencies and ambiguities, in our own words.
INCONSISTENCIES: Mapping[str, str] = {
    "IC-01": "IDDS drug 'morphine + bupivacaine' printed 9 (9.5 %); 9/96 is 9.375 %, i.e. 9.4 "
             "(the four printed shares look forced to sum to 100.0).",
    "IC-02": "Insertion level 'Other' printed 11 (11.4 %); 11/96 is 11.458 %, i.e. 11.5 "
             "(again the printed shares sum to exactly 100.0).",
    "IC-03": "Two percentages are printed with two decimals (3.13 %, 1.04 %) where the paper "
             "otherwise prints one; compared at the printed two decimals.",
    "IC-04": "Implant reasons 93.8 % + 6.3 % = 100.1 %: correct half-up rounding of 93.75 and "
             "6.25 (half-even would print 93.8 and 6.2).",
    "IC-05": "Baseline OME upper quartile: the abstract prints 632, Table 1 and the text 633.",
    "IC-06": "Baseline OME median 290 (100-633) cannot be a median over all 96 patients (only 41 "
             "exceed 200 mg; the 30 non-users have 0); it must be over the 66 opioid users. "
             "Both versions are reported.",
    "IC-07": "Table 1 metastasis row 'Live' means liver.",
    "IC-08": "Initial IDDS morphine dose: denominator unclear, morphine alone (n = 61) or "
             "including the 9 morphine + bupivacaine pumps (n = 70). Both are reported; "
             "n = 61 is primary.",
    "IC-09": "ITT drug percentages use all 96 patients although only the 79 with a trial "
             "received a drug; shares among trial recipients are reported alongside.",
    "IC-10": "'Months from implant to death/last visit 3 (2-6)' (Table 3) is a descriptive "
             "median of mixed death and censoring times, while the text calls 3 (2-6) the "
             "median overall survival (Kaplan-Meier). Both are computed.",
    "IC-11": "The survival set drops the perioperative death, the explanted patient and the 22 "
             "lost to follow-up instead of censoring them; a sensitivity analysis on all "
             "patients is reported.",
    "IC-12": "Systemic opioids after IDDS: 23 stopped + 37 below 100 mg OME among 72 imply at "
             "least 60 baseline users in the follow-up set (soft check).",
    "IC-13": "Total cost SD (10,395 CNY, CV 7 %) is small next to the self-pay SD (28,401, CV 63 %) "
             "despite LOS 11 +/- 5 days (plausible, unusual; soft flag).",
    "IC-14": "Catheter-tip groups T1-T5 / T6-T9 / 'below T10': T10 itself must belong to the "
             "third group for the groups to be exhaustive (label T10_or_lower).",
    "IC-15": "Table 1 lists the top three cancers; the text lists the top five (breast and liver "
             "appear in the text only).",
    "IC-16": "The time point of the follow-up NRS is not defined; scores came largely from family "
             "members by telephone.",
    "IC-17": "Post-operative length of stay (6 +/- 3 days) appears in the text only, not in Table 2.",
}


@dataclass(frozen=True)
class PaperValue:
    """One statistic as the paper prints it.

    Attributes
    ----------
    key : str
        Stable identifier, e.g. ``"age"`` or ``"idds_drug_morphine_bupivacaine"``.
    source : str
        Where it is printed (``"Table 1; §3.1; Abstract"``).
    label : str
        The paper's wording.
    statistic : str
        ``n_pct``, ``mean_sd``, ``median_iqr``, ``count``, ``pct``, ``value`` or ``p_value``.
    n : int or None
        Printed count.
    pct : str or None
        Printed percentage, as printed (precision matters).
    denominator : int or None
        The denominator the paper used (or that we infer).
    mean, sd, median, q1, q3, value : str or None
        Printed numbers (strings, commas allowed).
    ic : tuple of str
        Inconsistency ids that concern the value.
    note : str
        Short free-text remark.
    """

    key: str
    source: str
    label: str
    statistic: str
    n: int | None = None
    pct: str | None = None
    denominator: int | None = None
    mean: str | None = None
    sd: str | None = None
    median: str | None = None
    q1: str | None = None
    q3: str | None = None
    value: str | None = None
    ic: tuple[str, ...] = field(default_factory=tuple)
    note: str = ""

    @property
    def display(self) -> str:
        """The printed value in this package's display style."""
        if self.statistic in ("n_pct", "count", "pct"):
            if self.n is not None and self.pct is not None:
                return f"{self.n} ({self.pct})"
            if self.n is not None:
                return str(self.n)
            return f"({self.pct})"
        if self.statistic == "mean_sd":
            return f"{self.mean} {PLUS_MINUS} {self.sd}"
        if self.statistic == "median_iqr":
            return f"{self.median} ({self.q1}{EN_DASH}{self.q3})"
        return str(self.value)

    @property
    def is_flagged(self) -> bool:
        """True when an inconsistency id concerns this value."""
        return bool(self.ic)


def _np(key, source, label, n=None, pct=None, denominator=96, ic=(), note=""):
    stat = "n_pct" if (n is not None and pct is not None) else ("count" if pct is None else "pct")
    return PaperValue(key=key, source=source, label=label, statistic=stat, n=n, pct=pct,
                      denominator=denominator, ic=tuple(ic), note=note)


def _ms(key, source, label, mean, sd, denominator=96, ic=(), note=""):
    return PaperValue(key=key, source=source, label=label, statistic="mean_sd", mean=mean, sd=sd,
                      denominator=denominator, ic=tuple(ic), note=note)


def _mi(key, source, label, median, q1, q3, denominator=96, ic=(), note=""):
    return PaperValue(key=key, source=source, label=label, statistic="median_iqr", median=median,
                      q1=q1, q3=q3, denominator=denominator, ic=tuple(ic), note=note)


def _val(key, source, label, value, statistic="value", denominator=96, ic=(), note=""):
    return PaperValue(key=key, source=source, label=label, statistic=statistic, value=value,
                      denominator=denominator, ic=tuple(ic), note=note)


_T1 = "Table 1"
_T2 = "Table 2"
_T3 = "Table 3"

_VALUES: tuple[PaperValue, ...] = (
    # ---- cohort ---------------------------------------------------------------------------
    _np("cohort_n", "Abstract; §3.1", "Consecutive patients analysed", n=96),
    # ---- demographics (Table 1, §3.1) -------------------------------------------------------
    _ms("age", f"{_T1}; §3.1; Abstract", "Age (years)", "62", "10"),
    _np("sex_female", f"{_T1}; §3.1; Abstract", "Gender: female", 47, "49.0",
        note="Table 1 prints 47/49 (49 %/51 %); the text prints 49.0 %"),
    _np("sex_male", f"{_T1}; §3.1", "Gender: male", 49, "51.0"),
    _ms("bmi", f"{_T1}; §3.1", "BMI (kg/m2)", "20.7", "3.1"),
    _val("bmi_min", "§3.1", "BMI minimum (kg/m2)", "14.3"),
    _val("bmi_max", "§3.1", "BMI maximum (kg/m2)", "29.4"),
    _np("underweight", "§3.1", "Underweight (BMI < 18.5)", 29, "30.2"),
    _ms("adl", f"{_T1}; §3.1", "ADL score at surgery", "67", "24"),
    _np("adl_lt60", "§3.1", "ADL below 60 points", 37, "38.5"),
    _np("wheelchair_or_cart", "§3.1", "Admitted by wheelchair or cart", 53, "55.2"),
    _np("pressure_sore", "§3.1", "Pressure sores", 23, "24.0"),
    _np("skin_compromising_line", "§3.1", "Skin-compromising indwelling line", 28, "29.2"),
    _np("implant_year_2021", "§3.1", "Implants in 2021", 27, "28.1"),
    _np("implant_year_2022", "§3.1", "Implants in 2022", 18, "18.8"),
    _np("implant_year_2023", "§3.1", "Implants in 2023", 51, "53.1"),
    # ---- tumour (Table 1, §3.2) ---------------------------------------------------------------
    _np("cancer_lung", f"{_T1}; §3.2; Abstract", "Cancer type: lung", 33, "34.4"),
    _np("cancer_colorectal", f"{_T1}; §3.2; Abstract", "Cancer type: colorectal", 17, "17.7"),
    _np("cancer_pancreas", f"{_T1}; §3.2; Abstract", "Cancer type: pancreas", 11, "11.5"),
    _np("cancer_breast", "§3.2; Abstract", "Cancer type: breast", pct="5.2", ic=("IC-15",)),
    _np("cancer_liver", "§3.2; Abstract", "Cancer type: liver", pct="4.2", ic=("IC-15",)),
    _mi("cancer_duration", f"{_T1}; §3.2; Abstract", "Cancer duration (month)", "24", "12", "48"),
    _np("metastasis_any", "§3.2; Discussion", "Metastatic disease", pct="62.5"),
    _np("met_bone", f"{_T1}; §3.2", "Metastasis: bone", 38, "39.6"),
    _np("met_liver", _T1, "Metastasis: liver (printed 'Live')", 18, "18.8", ic=("IC-07",)),
    _np("met_lung", _T1, "Metastasis: lung", 8, "8.3"),
    _np("prior_surgery", f"{_T1}; §3.2", "Prior treatment: surgery", 49, "51.0"),
    _np("prior_chemoradiotherapy", f"{_T1}; §3.2", "Prior treatment: chemoradiotherapy", 64, "66.7"),
    _np("prior_immunotherapy", f"{_T1}; §3.2", "Prior treatment: immunotherapy", 30, "31.3",
        note="30/96 = 31.25 %: half-up 31.3 (half-even would print 31.2)"),
    _np("prior_any_antineoplastic", "§3.2", "Any prior antineoplastic therapy", pct="88.5"),
    # ---- pain (Table 1, §3.3) -----------------------------------------------------------------
    _np("pain_site_lumbosacral", "§3.3; Discussion", "Pain location: lumbosacral", pct="41.7"),
    _np("pain_site_abdomen", "§3.3; Discussion", "Pain location: abdomen", pct="31.3"),
    _np("pain_site_back", "§3.3; Discussion", "Pain location: back", pct="27.1"),
    _np("pain_site_lower_limb", "§3.3", "Pain location: lower extremity", pct="19.8"),
    _np("pain_site_perineum", "§3.3", "Pain location: perineal region", pct="7.3"),
    _np("pain_site_chest", "§3.3", "Pain location: chest", pct="7.3"),
    _np("pain_site_head_neck", "§3.3", "Pain location: head and neck", pct="5.2"),
    _np("pain_site_upper_limb", "§3.3", "Pain location: upper extremity", pct="2.1"),
    _mi("pain_duration", f"{_T1}; §3.3; Abstract", "Pain duration (month)", "6", "2", "12"),
    _np("pain_preceded_cancer", "§3.3", "Pain onset preceded cancer detection", pct="12.5"),
    _np("systemic_opioid_user", "§3.3", "Taking a systemic opioid", 66, "68.8"),
    _mi("ome", f"{_T1}; §3.3; Discussion", "Oral morphine equivalent (mg/d)", "290", "100", "633",
        denominator=96, ic=("IC-06",),
        note="printed under 'Total (n = 96)'; reproducible only over the 66 opioid users"),
    _mi("ome_abstract", "Abstract", "Oral morphine equivalent (mg/d), abstract", "290", "100", "632",
        denominator=96, ic=("IC-05", "IC-06")),
    _np("ome_gt200", "§3.3", "OME > 200 mg/d", 41, "42.7"),
    _np("ome_gt500", "§3.3", "OME > 500 mg/d", 23, "24.0"),
    _np("adjuvant_ge1", "§3.3", "At least one adjuvant drug", 31, "32.3"),
    _np("prior_pain_intervention", "§3.3", "Prior interventional pain procedure", 7, "7.3"),
    _np("reason_inadequate_relief", "§3.3; Discussion", "Reason: inadequate pain control", 90, "93.8",
        ic=("IC-04",)),
    _np("reason_side_effects", "§3.3", "Reason: opioid side effects", 6, "6.3", ic=("IC-04",)),
    # ---- IDDS (Table 2, §3.4-3.5) -------------------------------------------------------------
    _np("itt_count_0", f"{_T2}; §3.4", "Times of ITT: 0", 17, "17.7"),
    _np("itt_count_1", f"{_T2}; §3.4", "Times of ITT: 1", 68, "70.8"),
    _np("itt_count_2", f"{_T2}; §3.4", "Times of ITT: 2", 11, "11.5"),
    _np("itt_any", "Discussion", "Any intrathecal screening trial", pct="82.3"),
    _np("itt_drug_morphine", f"{_T2}; §3.4", "Drug for ITT: morphine", 43, "44.8", ic=("IC-09",)),
    _np("itt_drug_hydromorphone", f"{_T2}; §3.4", "Drug for ITT: hydromorphone", 33, "34.4",
        ic=("IC-09",)),
    _np("itt_drug_bupivacaine", _T2, "Drug for ITT: bupivacaine", 3, "3.1", ic=("IC-09",)),
    _ms("itt_dose_morphine", f"{_T2}; §3.4", "Dose of morphine for ITT (mg)", "0.18", "0.10",
        denominator=43),
    _ms("itt_dose_hydromorphone", f"{_T2}; §3.4", "Dose of hydromorphone for ITT (mg)", "0.03", "0.02",
        denominator=33),
    _ms("surgery_duration", f"{_T2}; §3.5", "Surgical duration (hour)", "2.34", "0.68"),
    _np("insertion_L2-L3", f"{_T2}; §3.5", "Insertion level L2/3", 55, "57.3"),
    _np("insertion_L3-L4", f"{_T2}; §3.5", "Insertion level L3/4", 30, "31.3"),
    _np("insertion_other", _T2, "Insertion level other", 11, "11.4", ic=("IC-02",)),
    _np("catheter_cephalad", "§3.5", "Catheter advanced cephalad", pct="94.8"),
    _np("tip_T1_T5", _T2, "Catheter tip T1-T5", 3, "3.1"),
    _np("tip_T6_T9", f"{_T2}; §3.5; Discussion", "Catheter tip T6-T9", 62, "64.6"),
    _np("tip_T10_or_lower", _T2, "Catheter tip below T10", 31, "32.3", ic=("IC-14",)),
    _np("tip_T6", "§3.5", "Catheter tip at T6", pct="19.8"),
    _np("idds_drug_morphine", f"{_T2}; §3.5", "Drug for IDDS: morphine", 61, "63.5"),
    _np("idds_drug_hydromorphone", f"{_T2}; §3.5", "Drug for IDDS: hydromorphone", 25, "26.0"),
    _np("idds_drug_bupivacaine", f"{_T2}; §3.5", "Drug for IDDS: bupivacaine", 1, "1.0"),
    _np("idds_drug_morphine_bupivacaine", f"{_T2}; §3.5", "Drug for IDDS: bupivacaine + morphine",
        9, "9.5", ic=("IC-01",)),
    _ms("idds_init_morphine", f"{_T2}; §3.5", "Initial dose of morphine for IDDS (mg/d)", "1.07", "1.05",
        denominator=61, ic=("IC-08",)),
    _ms("idds_init_hydromorphone", f"{_T2}; §3.5", "Initial dose of hydromorphone for IDDS (mg/d)",
        "0.16", "0.13", denominator=25),
    _ms("los_total", f"{_T2}; §3.1", "Total length of hospital stay (day)", "11", "5"),
    _ms("los_postop", "§3.1", "Implant to discharge (day)", "6", "3", ic=("IC-17",)),
    _ms("cost_total", f"{_T2}; §3.1", "Cost of total hospital admission (CNY)", "152,084", "10,395",
        ic=("IC-13",)),
    _ms("cost_self_pay", f"{_T2}; §3.1", "Cost at patients' own expense (CNY)", "45,108", "28,401",
        ic=("IC-13",)),
    # ---- complications (§3.6) ------------------------------------------------------------------
    _np("comp_pdph", "§3.6", "Post-dural puncture headache", 12, "12.5"),
    _np("comp_fever", "§3.6", "Post-operative fever", 8, "8.3"),
    _np("comp_urinary_retention_constipation", "§3.6", "Urine retention and constipation (5 days)",
        3, "3.13", ic=("IC-03",)),
    _np("in_hospital_death", "§3.6", "Died the day after surgery / in-hospital mortality", 1, "1.04",
        ic=("IC-03",)),
    _np("comp_poor_wound_healing", "§3.6", "Poor wound healing (explanted)", 1),
    # ---- follow-up (Table 3, §3.7) -------------------------------------------------------------
    _np("followed", "Abstract; §3.7", "Complete follow-up", 72, "75"),
    _np("not_followed", "§3.7", "Excluded from follow-up", 24, ic=("IC-11",)),
    _ms("nrs_before", f"{_T3}; §3.7; Abstract; Discussion", "NRS at surgery", "7.5", "0.8", denominator=72),
    _ms("nrs_after", f"{_T3}; §3.7; Abstract; Discussion", "NRS at follow-up", "3.0", "1.1",
        denominator=72, ic=("IC-16",)),
    _val("nrs_p", "§3.7; Abstract; Discussion", "Paired t-test, NRS before vs after", "<0.001",
         statistic="p_value", denominator=72),
    _np("opioid_after_stopped", "§3.7", "Stopped systemic opioids", 23, "31.9", denominator=72,
        ic=("IC-12",)),
    _np("opioid_after_lt_100", "§3.7", "Continued < 100 mg OME daily", 37, "51.4", denominator=72,
        ic=("IC-12",)),
    _np("opioid_after_stopped_or_less", "Discussion", "Systemic opioid stopped or used less",
        pct="83.3", denominator=72, ic=("IC-12",)),
    _np("satisfied", f"{_T3}; §3.7; Abstract; Discussion", "Satisfaction with IDDS", 54, "75",
        denominator=72),
    _np("unsatisfied", "§3.7", "Unsatisfied", 18, "25", denominator=72),
    _np("deaths_followup", "§3.7", "Died after discharge during the study", 56, denominator=72),
    _mi("os_descriptive", _T3, "Months from implant to death/last visit", "3", "2", "6",
        denominator=72, ic=("IC-10",)),
    _mi("os_km", "§3.7; Abstract; Discussion", "Median (IQR) overall survival after implant (months)",
        "3", "2", "6", denominator=72, ic=("IC-10", "IC-11")),
)

#: All printed values by key.
PAPER: Mapping[str, PaperValue] = {v.key: v for v in _VALUES}
assert len(PAPER) == len(_VALUES), "duplicate paper keys"


def paper_value(key: str) -> PaperValue:
    """Look up a printed value by key.

    Parameters
    ----------
    key : str

    Returns
    -------
    PaperValue

    Raises
    ------
    KeyError
        With the unknown key named.
    """
    try:
        return PAPER[key]
    except KeyError:
        raise KeyError(f"no printed paper value with key {key!r}") from None


def _same(ours: float | Fraction | None, printed: str | None) -> bool:
    if printed is None:
        return True
    if ours is None:
        return False
    try:
        if ours != ours:  # NaN
            return False
    except TypeError:
        pass
    return round_half_up(ours, decimals_of(printed)) == round_half_up(printed, decimals_of(printed))


def compare(
    key: str,
    *,
    n: int | None = None,
    denominator: int | None = None,
    mean: float | None = None,
    sd: float | None = None,
    median: float | None = None,
    q1: float | None = None,
    q3: float | None = None,
    value: float | None = None,
    p_value: float | None = None,
) -> bool:
    """Does our statistic reproduce the printed one at the printed precision?

    Counts must match exactly; percentages are recomputed half-up from the exact
    fraction ``n / denominator`` at the printed number of decimals; means, SDs,
    medians and quartiles are rounded half-up at the printed precision; a
    printed ``"<0.001"`` requires ``p_value < 0.001``.

    Parameters
    ----------
    key : str
        Paper value key.
    n, denominator : int, optional
        Our count and denominator (n_pct / count / pct values).
    mean, sd, median, q1, q3, value : float, optional
        Our numbers for the other kinds.
    p_value : float, optional
        Our p-value (``p_value`` kind).

    Returns
    -------
    bool
    """
    pv = paper_value(key)
    if pv.statistic in ("n_pct", "count", "pct"):
        if n is None:
            return False
        ok = True
        if pv.n is not None:
            ok &= int(n) == pv.n
        if pv.pct is not None:
            if not denominator:
                return False
            ok &= pct_half_up(int(n), int(denominator), decimals_of(pv.pct)) == round_half_up(
                pv.pct, decimals_of(pv.pct))
        return bool(ok)
    if pv.statistic == "mean_sd":
        return _same(mean, pv.mean) and _same(sd, pv.sd)
    if pv.statistic == "median_iqr":
        return _same(median, pv.median) and _same(q1, pv.q1) and _same(q3, pv.q3)
    if pv.statistic == "p_value":
        if p_value is None or p_value != p_value:
            return False
        printed = str(pv.value).strip()
        if printed.startswith("<"):
            return float(p_value) < float(printed[1:])
        return _same(p_value, printed)
    return _same(value, pv.value)
