"""Read the cohort mart, call the pure analysis functions, write the outcome marts."""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.survival import km_curves, km_summary


def compute_outcomes(cohort: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Outcome marts from the cohort frame (pure: frames in, frames out)."""
    return {
        "survival_km": km_curves(cohort, strata=()),
        "survival_summary": km_summary(cohort, strata=()),
    }


def write_outcome_marts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Compute and replace the outcome marts; return their row counts."""
    cohort = con.execute("select * from marts.cohort_idds").df()
    counts = {}
    for name, frame in compute_outcomes(cohort).items():
        con.register("_outcome", frame)
        try:
            con.execute(f"create or replace table marts.{name} as select * from _outcome")
        finally:
            con.unregister("_outcome")
        counts[name] = len(frame)
    return counts
