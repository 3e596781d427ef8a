"""Statistics for the IDDS cancer-pain reproduction (Wang et al., Heliyon 2024).

Pure functions: cohort frames in, result frames (the analyst marts' long form) or
small dataclasses out. No file or database I/O; figures are returned as
:class:`matplotlib.figure.Figure` objects and never saved here.

Public API
----------
tables.table1 / table2 / table3      -> table1/2/3 marts
pain.pain_response                   -> pain_response mart
survival.survival_sets               -> SurvivalSets (follow-up, sensitivity)
survival.km_curves                   -> survival_km mart
survival.km_summary                  -> survival_summary mart
survival.logrank_tests, descriptive_times
cox.cox_model                        -> CoxResult
trends.implants_by_year              -> implants_by_year mart
reproduction.reproduction            -> reproduction mart
figures.*                            -> matplotlib Figures
paper.PAPER, paper.INCONSISTENCIES   -> the paper's printed values and IC-01..IC-17
"""

from .cox import CoxResult, cox_model
from .pain import pain_response
from .paper import INCONSISTENCIES, PAPER
from .reproduction import reproduction
from .survival import (
    SurvivalSets,
    descriptive_times,
    km_curves,
    km_summary,
    logrank_tests,
    survival_sets,
)
from .tables import table1, table2, table3
from .trends import implants_by_year

__all__ = [
    "CoxResult",
    "INCONSISTENCIES",
    "PAPER",
    "SurvivalSets",
    "cox_model",
    "descriptive_times",
    "implants_by_year",
    "km_curves",
    "km_summary",
    "logrank_tests",
    "pain_response",
    "reproduction",
    "survival_sets",
    "table1",
    "table2",
    "table3",
]
