"""`idds export --aggregate`: outcome marts for other centres, small cells suppressed.

The export is checked on a hand-made analyst file (every suppression case, fast) and on
the analyst file of the session's pipeline run (the real marts). An attacker who knows
the structure of the tables (levels of a variable add up to the denominator, n = events +
censored, ...) and every published number must not recover a count of 1 to 4 patients.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analysis.pain import PAIN_RESPONSE_COLUMNS
from analysis.survival import SURVIVAL_KM_COLUMNS, SURVIVAL_SUMMARY_COLUMNS
from analysis.tables import TABLE_COLUMNS
from analysis.trends import IMPLANTS_BY_YEAR_COLUMNS
from idds.cli import main
from idds.export import EXPORTS, export_aggregate

SMALL = range(1, 5)
COUNT_COLUMNS = {
    "table1": ("n", "denominator"), "table2": ("n", "denominator"), "table3": ("n", "denominator"),
    "implants_by_year": ("n", "denominator"), "cohort_attrition": ("n_remaining", "n_excluded"),
    "pain_response": ("n", "n_zero_differences", "n_improved", "n_reduction_ge30", "n_reduction_ge50"),
    "survival_summary": ("n", "n_events", "n_censored"),
}


# ------------------------------------------------------------------------------------------
# a hand-made analyst file
# ------------------------------------------------------------------------------------------


def table_rows(rows: list[tuple]) -> pd.DataFrame:
    """(variable, level, statistic, n, denominator) -> rows of the tables' long form."""
    out = []
    for i, (variable, level, statistic, n, den) in enumerate(rows, start=1):
        r = {c: None for c in TABLE_COLUMNS}
        r.update(row_order=i, section="s", variable=variable, level=level, statistic=statistic, n=n,
                 denominator=den, paper_display="", matches_paper=None, note="", ic_ids="")
        if statistic == "n_pct":
            r.update(value=100 * n / den, display=f"{n} ({100 * n / den:.1f})", paper_display=f"{n} ({100 * n / den:.1f})",
                     matches_paper=True, note=f"recomputed {n}")
        else:
            r.update(value=61.5, sd=9.75, min=18.0, max=93.0, display="61.5 ± 9.8", note="min and max")
        out.append(r)
    return pd.DataFrame(out, columns=list(TABLE_COLUMNS))


TABLE1 = [
    ("age_years", "", "mean_sd", 96, 96),
    ("sex", "F", "n_pct", 2, 96), ("sex", "M", "n_pct", 94, 96),               # one small level
    ("pressure_sore", "yes", "n_pct", 2, 96),                                  # yes/no, small yes
    ("catheter_cephalad", "yes", "n_pct", 93, 96),                             # yes/no, small "no"
    ("bmi", "", "mean_sd", 3, 96),                                             # a mean of 3 patients
    ("implant_year", "2021", "n_pct", 30, 96), ("implant_year", "2022", "n_pct", 3, 96),
    ("implant_year", "2023", "n_pct", 63, 96),
    ("cancer_site", "lung", "n_pct", 50, 96), ("cancer_site", "colorectal", "n_pct", 30, 96),
    ("cancer_site", "breast", "n_pct", 12, 96), ("cancer_site", "liver", "n_pct", 3, 96),
    ("cancer_site", "other", "n_pct", 1, 96),
    ("adl_lt60", "ADL < 60", "n_pct", 37, 96),
    ("ome_gt200", "OME > 200 mg/d", "n_pct", 41, 96), ("ome_gt500", "OME > 500 mg/d", "n_pct", 39, 96),
]
TABLE2 = [
    ("itt_count", "0", "n_pct", 17, 96), ("itt_count", "1", "n_pct", 76, 96), ("itt_count", "2", "n_pct", 3, 96),
    ("itt_any", ">= 1", "n_pct", 79, 96),
    ("itt_drug", "morphine", "n_pct", 43, 96), ("itt_drug", "hydromorphone", "n_pct", 33, 96),
    ("itt_drug", "bupivacaine", "n_pct", 3, 96),
    ("itt_drug", "morphine (among trial recipients)", "n_pct", 43, 79),
    ("itt_drug", "hydromorphone (among trial recipients)", "n_pct", 33, 79),
    ("itt_drug", "bupivacaine (among trial recipients)", "n_pct", 3, 79),
    ("itt_dose_mg", "bupivacaine", "mean_sd", 3, 3),
]
TABLE3 = [
    ("followup_status", "followed", "n_pct", 72, 96), ("followup_status", "periop_death", "n_pct", 1, 96),
    ("followup_status", "explanted", "n_pct", 1, 96), ("followup_status", "lost_or_refused", "n_pct", 22, 96),
    ("followup_status", "not followed", "n_pct", 24, 96),
    ("systemic_opioid_after", "stopped", "n_pct", 23, 72), ("systemic_opioid_after", "lt_100", "n_pct", 45, 72),
    ("systemic_opioid_after", "stopped or lt_100", "n_pct", 68, 72), ("systemic_opioid_after", "other", "n_pct", 4, 72),
    ("os_event", "died", "n_pct", 56, 72), ("os_event", "censored (alive at last contact)", "n_pct", 16, 72),
]


def survival_summary() -> pd.DataFrame:
    rows = [("followup", "overall", "", "", 72, 56, 16),
            ("followup", "adl_lt60=false", "adl_lt60", "false", 43, 29, 14),
            ("followup", "adl_lt60=true", "adl_lt60", "true", 29, 27, 2),
            ("followup", "implant_year=2021", "implant_year", "2021", 25, 15, 10),
            ("followup", "implant_year=2022", "implant_year", "2022", 3, 3, 0),
            ("followup", "implant_year=2023", "implant_year", "2023", 44, 38, 6),
            ("sensitivity", "overall", "", "", 96, 57, 39)]
    out = []
    for aset, stratum, var, level, n, ev, ce in rows:
        r = {c: None for c in SURVIVAL_SUMMARY_COLUMNS}
        r.update(analysis_set=aset, stratum=stratum, variable=var, level=level, n=n, n_events=ev, n_censored=ce,
                 median_months=3.0, surv_6m=0.3, surv_12m=0.2, censored_min_months=0.5, censored_max_months=30.1,
                 display="3 (2-6)", note=f"{n} patients")
        out.append(r)
    return pd.DataFrame(out, columns=list(SURVIVAL_SUMMARY_COLUMNS))


def survival_km() -> pd.DataFrame:
    rows = []
    for aset, stratum, n in (("followup", "overall", 72), ("followup", "adl_lt60=true", 29),
                             ("followup", "implant_year=2021", 25), ("sensitivity", "overall", 96)):
        at_risk, s = n, 1.0
        rows.append((aset, stratum, 0.0, n, 0, 0, 1.0, 1.0, 1.0, 0.0))
        for step in range(1, n + 1):
            t = step * 0.5
            s *= (at_risk - 1) / at_risk
            rows.append((aset, stratum, t, at_risk, 1, 0, s, max(0.0, s - 0.1), min(1.0, s + 0.1), t * 30.4375))
            at_risk -= 1
    return pd.DataFrame(rows, columns=list(SURVIVAL_KM_COLUMNS))


def pain() -> pd.DataFrame:
    out = []
    for test in ("paired_t", "wilcoxon"):
        r = {c: None for c in PAIN_RESPONSE_COLUMNS}
        r.update(test=test, n=40, before_mean=7.5, after_mean=3.0, statistic=12.0, p_value=1e-9, p_display="<0.001",
                 n_zero_differences=0, n_improved=38, pct_improved=95.0, n_reduction_ge30=30, pct_reduction_ge30=75.0,
                 n_reduction_ge50=20, pct_reduction_ge50=50.0, note="scipy")
        out.append(r)
    return pd.DataFrame(out, columns=list(PAIN_RESPONSE_COLUMNS))


def implants() -> pd.DataFrame:
    rows = [(2021, 30, None), (2022, 3, -27), (2023, 63, 60)]
    return pd.DataFrame([{"implant_year": y, "n": n, "denominator": 96, "percent": 100 * n / 96,
                          "display": f"{n} ({100 * n / 96:.1f})", "paper_display": f"{n} ({100 * n / 96:.1f})",
                          "matches_paper": True, "change_from_previous": c} for y, n, c in rows],
                        columns=list(IMPLANTS_BY_YEAR_COLUMNS))


def attrition() -> pd.DataFrame:
    rows = [(0, "extract", 200, 0, None), (1, "no_implant", 110, 90, "no_implant (90)"),
            (2, "no_first_implant", 108, 2, "no_first_implant (2)"),
            (3, "implant_outside_window", 100, 8, "implant_outside_window (8)"),
            (4, "missing_data", 96, 4, "missing_data:bmi (3), missing_data:sex (1)")]
    return pd.DataFrame([{"step_order": o, "step": s, "rule": f"rule {s}", "n_remaining": r, "n_excluded": e,
                          "reason": why} for o, s, r, e, why in rows])


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("handmade") / "analyst.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema dq")
    frames = {"table1": table_rows(TABLE1), "table2": table_rows(TABLE2), "table3": table_rows(TABLE3),
              "survival_summary": survival_summary(), "survival_km": survival_km(), "pain_response": pain(),
              "implants_by_year": implants(), "cohort_attrition": attrition(),
              "cohort_idds": pd.DataFrame({"patient_key": ["pk_0123456789abcdef0123"] * 3, "age_years": [50, 60, 70]})}
    for name, frame in frames.items():
        con.register("f", frame)
        con.execute(f"create table marts.{name} as select * from f")
        con.unregister("f")
    con.execute("create table dq.dq_run as select 'r1' as run_id, now()::timestamp as started_at, "
                "'succeeded' as status")
    con.close()
    return path


@pytest.fixture(scope="module")
def pipeline_analyst(pipeline_run) -> Path:
    settings, code = pipeline_run
    assert code == 0
    return settings.publish


@pytest.fixture(scope="module", params=["handmade", "pipeline"])
def exported(request, tmp_path_factory):
    analyst = request.getfixturevalue("handmade" if request.param == "handmade" else "pipeline_analyst")
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    summary = export_aggregate(analyst, out)
    return analyst, out, summary


# ------------------------------------------------------------------------------------------
# reading an export and its truth
# ------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def num(v) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        if pd.isna(v):
            return None
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def truth(analyst: Path, table: str) -> pd.DataFrame:
    con = duckdb.connect(str(analyst), read_only=True)
    try:
        return con.execute(f"select * from marts.{table}").df()
    finally:
        con.close()


def suppressed(row: dict, column: str) -> bool:
    return column in row["suppressed"].split(";")


class Attack:
    """What someone holding the export can solve: linear relations whose other terms are
    all published. Cells: published values, suppressed cells and implied (unpublished)
    counts; each relation holds for the true values."""

    def __init__(self) -> None:
        self.known: dict[str, float] = {}
        self.true: dict[str, float] = {}
        self.protected: set[str] = set()  # suppressed or implied cells
        self.relations: list[dict[str, float]] = []

    def cell(self, name: str, published: float | None, true: float | None) -> str | None:
        if true is None:
            return None
        self.true[name] = true
        if published is None:
            self.protected.add(name)
        else:
            assert published == true, name
            self.known[name] = published
        return name

    def implied(self, name: str, true: float) -> str:
        self.true[name] = true
        self.protected.add(name)
        return name

    def relation(self, terms: dict[str | None, float]) -> None:
        if None in terms:
            return
        if abs(sum(c * self.true[k] for k, c in terms.items())) < 1e-9:
            self.relations.append(terms)

    def recovered_small_cells(self) -> list[str]:
        known = dict(self.known)
        progress = True
        while progress:
            progress = False
            for terms in self.relations:
                unknown = [k for k in terms if k not in known]
                if len(unknown) == 1:
                    k = unknown[0]
                    known[k] = -sum(c * known[o] for o, c in terms.items() if o != k) / terms[k]
                    progress = True
        return sorted(k for k in self.protected if k in known and 1 <= round(self.true[k]) <= 4)


def build_attack(analyst: Path, out: Path) -> Attack:
    a = Attack()
    level_cells: dict[tuple[str, str, float], str] = {}
    for table in ("table1", "table2", "table3"):
        published = {int(r["row_order"]): r for r in read_csv(out / f"{table}.csv")}
        t = truth(analyst, table)
        groups: dict[tuple[str, float], list[tuple[str, str, float]]] = defaultdict(list)
        for _, r in t.iterrows():
            p = published[int(r["row_order"])]
            name = a.cell(f"{table}:{r['row_order']}", num(p["n"]), num(r["n"]))
            level = str(r["level"] or "")
            if r["statistic"] == "n_pct":
                groups[(r["variable"], float(r["denominator"]))].append((name, level, float(r["n"])))
                level_cells[(table, r["variable"], level)] = name
        for (variable, den), levels in groups.items():
            values = {lv: v for _, lv, v in levels}
            names = {lv: n for n, lv, _ in levels}
            composite = set()
            for lv in values:
                parts = lv.split(" or ") if " or " in lv else (
                    [o for o in values if o not in (lv, lv[4:])] if lv.startswith("not ") and lv[4:] in values else [])
                if parts and all(p in values for p in parts) and sum(values[p] for p in parts) == values[lv]:
                    composite.add(lv)
                    a.relation({names[lv]: 1.0, **{names[p]: -1.0 for p in parts}})
            rest = den - sum(v for lv, v in values.items() if lv not in composite)
            if rest >= 0:
                terms = {names[lv]: 1.0 for lv in values if lv not in composite}
                if rest:
                    terms[a.implied(f"{table}:{variable}:rest", rest)] = 1.0
                a.relation({**terms, a.cell(f"den:{table}:{variable}:{den}", den, den): -1.0})
        # the same count twice: "(among ...)" rows, a mean's n equal to a level's count
        for (tbl, variable, level), name in list(level_cells.items()):
            if tbl == table and " (among" in level:
                other = level_cells.get((table, variable, level.split(" (among")[0]))
                if other:
                    a.relation({name: 1.0, other: -1.0})
        for _, r in t[t["statistic"] != "n_pct"].iterrows():
            for (tbl, _v, level), name in level_cells.items():
                if tbl == table and level == r["level"]:
                    a.relation({f"{table}:{r['row_order']}": 1.0, name: -1.0})
    # implants_by_year: the same counts as Table 1, their sum and their changes
    pub = {int(r["implant_year"]): r for r in read_csv(out / "implants_by_year.csv")}
    prev = None
    for _, r in truth(analyst, "implants_by_year").sort_values("implant_year").iterrows():
        year = int(r["implant_year"])
        name = a.cell(f"iby:{year}", num(pub[year]["n"]), float(r["n"]))
        a.relation({name: 1.0, level_cells.get(("table1", "implant_year", str(year))): -1.0})
        if prev is not None and num(r["change_from_previous"]) is not None:
            change = a.cell(f"iby:change:{year}", num(pub[year]["change_from_previous"]),
                            float(r["change_from_previous"]))
            a.relation({change: 1.0, name: -1.0, prev: 1.0})
        prev = name
    # attrition chain
    pub = {int(r["step_order"]): r for r in read_csv(out / "cohort_attrition.csv")}
    prev = None
    for _, r in truth(analyst, "cohort_attrition").sort_values("step_order").iterrows():
        o = int(r["step_order"])
        rem = a.cell(f"att:{o}:rem", num(pub[o]["n_remaining"]), float(r["n_remaining"]))
        exc = a.cell(f"att:{o}:exc", num(pub[o]["n_excluded"]), float(r["n_excluded"]))
        if prev is not None:
            a.relation({prev: 1.0, exc: -1.0, rem: -1.0})
        prev = rem
    # pain response: the two tests repeat the counts; improved / >= 30 % / >= 50 % are nested
    pub_rows = read_csv(out / "pain_response.csv")
    for i, r in truth(analyst, "pain_response").iterrows():
        p = pub_rows[i]
        c = {k: a.cell(f"pain:{i}:{k}", num(p[k]), num(r[k])) for k in COUNT_COLUMNS["pain_response"]}
        if None in c.values():
            continue
        a.relation({c["n"]: 1.0, c["n_zero_differences"]: -1.0, c["n_improved"]: -1.0,
                    a.implied(f"pain:{i}:worse", r["n"] - r["n_zero_differences"] - r["n_improved"]): -1.0})
        a.relation({c["n_improved"]: 1.0, c["n_reduction_ge30"]: -1.0,
                    a.implied(f"pain:{i}:lt30", r["n_improved"] - r["n_reduction_ge30"]): -1.0})
        a.relation({c["n_reduction_ge30"]: 1.0, c["n_reduction_ge50"]: -1.0,
                    a.implied(f"pain:{i}:lt50", r["n_reduction_ge30"] - r["n_reduction_ge50"]): -1.0})
        if i:
            for k in c:
                a.relation({c[k]: 1.0, f"pain:0:{k}": -1.0})
    # survival: n = events + censored, strata add up to overall, a stratum within its Table 1/2 count
    pub = {(r["analysis_set"], r["stratum"]): r for r in read_csv(out / "survival_summary.csv")}
    t = truth(analyst, "survival_summary")
    t = t[t["analysis_set"].isin({k[0] for k in pub})]
    cells = {}
    for _, r in t.iterrows():
        key = (r["analysis_set"], r["stratum"])
        p = pub[key]
        cells[key] = {k: a.cell(f"surv:{key}:{k}", num(p[k]), num(r[k])) for k in ("n", "n_events", "n_censored")}
        a.relation({cells[key]["n"]: 1.0, cells[key]["n_events"]: -1.0, cells[key]["n_censored"]: -1.0})
    for (_aset, stratum), c in cells.items():
        if stratum == "overall":
            continue
        variable, level = stratum.split("=", 1)
        for table in ("table1", "table2"):
            options = [(lv, n) for (tb, v, lv), n in level_cells.items() if tb == table and v == variable]
            match = [n for lv, n in options if lv == level]
            if not match and len(options) == 1 and level in ("true", "false"):
                rest = f"{table}:{variable}:rest"
                match = [options[0][1]] if level == "true" else [rest] if rest in a.true else []
            if match:
                a.relation({match[0]: 1.0, c["n"]: -1.0,
                            a.implied(f"surv:{stratum}:not followed", a.true[match[0]] - a.true[c["n"]]): -1.0})
    by_var = defaultdict(list)
    for (aset, stratum) in cells:
        if stratum != "overall":
            by_var[(aset, stratum.split("=")[0])].append((aset, stratum))
    for (aset, variable), strata in by_var.items():
        for k in ("n", "n_events", "n_censored"):
            total = cells[(aset, "overall")][k]
            rest = a.true[total] - sum(a.true[cells[s][k]] for s in strata)
            terms = {cells[s][k]: 1.0 for s in strata}
            if rest:
                terms[a.implied(f"surv:{aset}:{variable}:{k}:rest", rest)] = 1.0
            a.relation({**terms, total: -1.0})
    # Table 3's deaths and censorings are the overall row of the follow-up set
    if ("followup", "overall") in cells:
        for (tb, v, lv), n in level_cells.items():
            if tb == "table3" and v == "os_event":
                col = "n_events" if lv.startswith("died") else "n_censored"
                a.relation({n: 1.0, cells[("followup", "overall")][col]: -1.0})
    return a


# ------------------------------------------------------------------------------------------
# the rule
# ------------------------------------------------------------------------------------------


def test_every_aggregate_is_written_with_a_readme(exported):
    _analyst, out, summary = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.csv" for n in EXPORTS] + ["README.txt"])
    assert set(summary["files"]) == {f"{n}.csv" for n in EXPORTS}
    for name in EXPORTS:
        rows = read_csv(out / f"{name}.csv")
        assert rows, name
        assert "suppressed" in rows[0]
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "1 to 4" in readme and "Complementary suppression" in readme
    total = sum(summary["suppressed"].values())
    assert total > 0 and "cells suppressed" in readme
    assert "Suppressed cells" in readme and "(none)" not in readme


def test_counts_of_1_to_4_are_never_published(exported):
    _analyst, out, _ = exported
    for name, columns in COUNT_COLUMNS.items():
        for row in read_csv(out / f"{name}.csv"):
            for c in columns:
                v = num(row[c])
                assert v is None or v == 0 or v >= 5, (name, c, row)


def test_what_is_computed_from_a_suppressed_count_is_suppressed_too(exported):
    analyst, out, _ = exported
    for table in ("table1", "table2", "table3"):
        t = truth(analyst, table).set_index("row_order")
        for row in read_csv(out / f"{table}.csv"):
            if suppressed(row, "n"):
                assert row["n"] == row["value"] == row["display"] == row["matches_paper"] == ""
                assert row["sd"] == row["q1"] == row["q3"] == ""
                n = int(t.loc[int(row["row_order"]), "n"])
                if n in SMALL and row["paper_display"]:
                    raise AssertionError(f"the paper's value beside a suppressed count: {row}")
    for row in read_csv(out / "implants_by_year.csv"):
        if suppressed(row, "n"):
            assert row["percent"] == row["display"] == row["paper_display"] == ""
    for row in read_csv(out / "pain_response.csv"):
        for k in ("improved", "reduction_ge30", "reduction_ge50"):
            if suppressed(row, f"n_{k}"):
                assert row[f"pct_{k}"] == ""
    for row in read_csv(out / "survival_summary.csv"):
        if suppressed(row, "n") or suppressed(row, "n_events"):
            assert row["median_months"] == row["surv_6m"] == row["display"] == ""


def test_small_cells_and_their_complements_in_the_handmade_file(tmp_path, handmade):
    export_aggregate(handmade, tmp_path)
    t1 = {(r["variable"], r["level"]): r for r in read_csv(tmp_path / "table1.csv")}
    assert suppressed(t1[("sex", "F")], "n") and suppressed(t1[("sex", "M")], "n")  # 96 - 94 = 2 otherwise
    assert suppressed(t1[("pressure_sore", "yes")], "n")
    assert suppressed(t1[("catheter_cephalad", "yes")], "n")  # 96 - 93 = 3 patients without
    assert t1[("bmi", "")]["value"] == t1[("bmi", "")]["sd"] == ""  # a mean of 3 patients
    assert t1[("age_years", "")]["value"] != "" and t1[("sex", "F")]["denominator"] == "96"
    assert suppressed(t1[("cancer_site", "liver")], "n") and suppressed(t1[("cancer_site", "other")], "n")
    assert not suppressed(t1[("cancer_site", "lung")], "n")
    assert suppressed(t1[("ome_gt500", "OME > 500 mg/d")], "n") or suppressed(t1[("ome_gt200", "OME > 200 mg/d")], "n")
    t2 = {(r["variable"], r["level"]): r for r in read_csv(tmp_path / "table2.csv")}
    assert suppressed(t2[("itt_count", "2")], "n") and suppressed(t2[("itt_drug", "bupivacaine")], "n")
    assert suppressed(t2[("itt_drug", "bupivacaine (among trial recipients)")], "n")
    assert t2[("itt_dose_mg", "bupivacaine")]["value"] == ""
    assert t2[("itt_dose_mg", "bupivacaine")]["denominator"] == ""  # a denominator of 3 is a small count
    t3 = {(r["variable"], r["level"]): r for r in read_csv(tmp_path / "table3.csv")}
    assert all(suppressed(t3[("followup_status", lv)], "n") for lv in ("periop_death", "explanted"))
    # 1 + 1 = 24 - 22: the two small levels would be pinned to a range of 0..2 otherwise
    assert suppressed(t3[("followup_status", "lost_or_refused")], "n")
    assert suppressed(t3[("systemic_opioid_after", "other")], "n")
    iby = {r["implant_year"]: r for r in read_csv(tmp_path / "implants_by_year.csv")}
    assert suppressed(iby["2022"], "n") and iby["2022"]["change_from_previous"] == ""
    assert suppressed(t1[("implant_year", "2022")], "n")
    att = {r["step"]: r for r in read_csv(tmp_path / "cohort_attrition.csv")}
    assert suppressed(att["no_first_implant"], "n_excluded") and suppressed(att["missing_data"], "n_excluded")
    assert "reason" not in att["extract"]
    pain_rows = read_csv(tmp_path / "pain_response.csv")
    assert all(suppressed(r, "n_improved") for r in pain_rows)  # 40 - 0 - 38 = 2 not improved
    surv = {r["stratum"]: r for r in read_csv(tmp_path / "survival_summary.csv")}
    assert set(r["analysis_set"] for r in surv.values()) == {"followup"}
    assert suppressed(surv["adl_lt60=true"], "n_censored") and surv["implant_year=2022"]["median_months"] == ""
    assert surv["overall"]["n"] == "72" and surv["overall"]["median_months"] != ""


def test_no_suppressed_cell_can_be_recovered_from_published_totals(exported):
    analyst, out, _ = exported
    attack = build_attack(analyst, out)
    assert attack.relations and attack.protected
    assert attack.recovered_small_cells() == []


def test_no_variable_has_a_single_suppressed_level_against_a_published_total(exported):
    analyst, out, _ = exported
    for table in ("table1", "table2", "table3"):
        t = truth(analyst, table).set_index("row_order")
        groups = defaultdict(list)
        for row in read_csv(out / f"{table}.csv"):
            if row["statistic"] == "n_pct":
                groups[(row["variable"], t.loc[int(row["row_order"]), "denominator"])].append(row)
        for (variable, den), rows in groups.items():
            hidden = [r for r in rows if suppressed(r, "n")]
            if len(hidden) != 1 or any(suppressed(r, "denominator") for r in rows):
                continue
            # one suppressed level: the published total minus the published levels must not give it
            published = sum(int(r["n"]) for r in rows if not suppressed(r, "n")
                            and " or " not in r["level"] and not r["level"].startswith("not "))
            true = int(t.loc[int(hidden[0]["row_order"]), "n"])
            assert den - published != true, (table, variable)
    for name, columns in (("survival_summary", ("n", "n_events", "n_censored")),):
        rows = read_csv(out / f"{name}.csv")
        overall = next(r for r in rows if r["stratum"] == "overall")
        by_var = defaultdict(list)
        for r in rows:
            if r["stratum"] != "overall":
                by_var[r["variable"]].append(r)
        t = truth(analyst, name).set_index(["analysis_set", "stratum"])
        for variable, strata in by_var.items():
            for c in columns:
                hidden = [r for r in strata if suppressed(r, c)]
                if len(hidden) == 1 and not suppressed(overall, c):
                    published = sum(int(r[c]) for r in strata if not suppressed(r, c))
                    true = int(t.loc[(hidden[0]["analysis_set"], hidden[0]["stratum"]), c])
                    assert int(overall[c]) - published != true, (variable, c)


def test_nothing_patient_level_is_exported(exported):
    analyst, out, _ = exported
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"pk_[0-9a-f]{20}", text), path.name
        if path.suffix == ".csv":
            assert "patient_key" not in text, path.name
        assert "cohort_idds" not in path.name and "survival_km.csv" != path.name
    for table in ("table1", "table2", "table3"):
        header = read_csv(out / f"{table}.csv")[0].keys()
        assert "min" not in header and "max" not in header and "note" not in header
    assert "reason" not in read_csv(out / "cohort_attrition.csv")[0]
    summary = read_csv(out / "survival_summary.csv")
    assert {r["analysis_set"] for r in summary} == {"followup"}
    assert "censored_min_months" not in summary[0] and "censored_max_months" not in summary[0]
    km = truth(analyst, "survival_km")
    for row in read_csv(out / "survival_km_timepoints.csv"):
        assert row["analysis_set"] == "followup"
        if row["n_at_risk_rounded"] == "":
            assert row["survival"] == "" and row["suppressed"]
            continue
        assert int(row["n_at_risk_rounded"]) % 5 == 0 and int(row["n_at_risk_rounded"]) >= 5
        curve = km[(km["analysis_set"] == row["analysis_set"]) & (km["stratum"] == row["stratum"])]
        later = curve[curve["time_months"] >= float(row["time_months"]) - 1e-9]
        at_risk = int(later["n_at_risk"].iloc[0]) if len(later) else 0
        assert at_risk >= 5 and abs(at_risk - int(row["n_at_risk_rounded"])) <= 2


# ------------------------------------------------------------------------------------------
# the command line and the analyst file
# ------------------------------------------------------------------------------------------


def test_the_cli_exports_and_says_where(handmade, tmp_path, capsys):
    out = tmp_path / "share"
    assert main(["export", "--aggregate", str(out), "--publish", str(handmade)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "suppressed" in printed
    assert (out / "README.txt").is_file() and (out / "table1.csv").is_file()


def test_the_cli_reads_the_analyst_file_from_the_environment(handmade, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IDDS_PUBLISH", str(handmade))
    assert main(["export", "--aggregate", str(tmp_path / "share")]) == 0
    assert (tmp_path / "share" / "survival_summary.csv").is_file()


def test_a_missing_analyst_file_is_one_clear_sentence_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "analyst.duckdb"
    assert main(["export", "--aggregate", str(tmp_path / "share"), "--publish", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "does not exist" in err
    assert err.count(". ") == 0 and err.endswith(".")
    assert not (tmp_path / "share").exists()


HOLD_READ_ONLY = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    con.execute("select count(*) from marts.table1").fetchall()
    print("open", flush=True)
    sys.stdin.readline()
    con.close()
""")


def test_the_analyst_file_is_read_read_only(handmade, tmp_path):
    before = hashlib.sha256(handmade.read_bytes()).hexdigest()
    mtime = handmade.stat().st_mtime_ns
    # another process holds the file read-only: a writer could not open it, a reader can
    holder = subprocess.Popen([sys.executable, "-c", HOLD_READ_ONLY, str(handmade)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(duckdb.Error):  # the lock the export must not need
            duckdb.connect(str(handmade), read_only=False)
        # and this process keeps a read-only connection open meanwhile (DuckDB refuses a
        # second connection to the same file in another mode)
        reader = duckdb.connect(str(handmade), read_only=True)
        try:
            summary = export_aggregate(handmade, tmp_path / "share")
            assert reader.execute("select count(*) from marts.table1").fetchall()[0][0] == len(TABLE1)
        finally:
            reader.close()
    finally:
        holder.communicate("done\n", timeout=30)
    assert summary["files"]
    assert hashlib.sha256(handmade.read_bytes()).hexdigest() == before
    assert handmade.stat().st_mtime_ns == mtime
    assert not list(handmade.parent.glob("*.wal"))
