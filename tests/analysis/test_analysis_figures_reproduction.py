"""Figures (Figure objects, nothing written) and the reproduction frame."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import figures
from analysis.cox import cox_model
from analysis.pain import pain_response
from analysis.paper import INCONSISTENCIES, PAPER, compare
from analysis.reproduction import REPRODUCTION_COLUMNS, reproduction
from analysis.survival import km_summary
from analysis.tables import table1, table2, table3


def test_figures_return_figures_and_write_nothing(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = cohort.copy(deep=True)
    figs = [
        figures.km_figure(cohort),
        figures.km_figure(cohort, analysis_set="sensitivity"),
        figures.km_by_stratum_figure(cohort, "adl_lt60"),
        figures.km_by_stratum_figure(cohort, "cancer_group"),
        figures.forest_figure(cox_model(cohort)),
        figures.nrs_figure(cohort),
        figures.implants_figure(cohort),
    ]
    for f in figs:
        assert isinstance(f, Figure)
        assert f.axes
        f.canvas.draw()   # renders on the Agg canvas without a display
        assert type(f.canvas).__name__ == "FigureCanvasAgg"
    assert os.listdir(tmp_path) == []
    pd.testing.assert_frame_equal(cohort, before)


def test_km_figure_elements(cohort):
    fig = figures.km_figure(cohort)
    ax = fig.axes[0]
    # dashed S = 0.5 reference line
    assert any(ln.get_linestyle() == "--" and list(ln.get_ydata()) == [0.5, 0.5] for ln in ax.get_lines())
    # censor marks
    assert any(ln.get_marker() == "|" for ln in ax.get_lines())
    # CI band
    assert ax.collections
    # number-at-risk table at 0, 3, 6, 12, 18, 24
    texts = [t.get_text() for t in ax.texts]
    assert "At risk" in texts
    fu = cohort[cohort["followup_status"] == "followed"]
    assert str(len(fu)) in texts
    assert str(int((fu["os_months"] >= 6).sum())) in texts


def test_figure_validation(cohort):
    with pytest.raises(ValueError, match="CoxResult"):
        figures.forest_figure("not a model")
    with pytest.raises(ValueError, match="followup_nrs"):
        figures.nrs_figure(cohort.drop(columns=["followup_nrs"]))


def test_paper_registry():
    assert set(INCONSISTENCIES) == {f"IC-{i:02d}" for i in range(1, 18)}
    for pv in PAPER.values():
        assert set(pv.ic) <= set(INCONSISTENCIES)
    assert PAPER["idds_drug_morphine_bupivacaine"].ic == ("IC-01",)
    assert compare("idds_drug_morphine_bupivacaine", n=9, denominator=96) is False
    assert compare("reason_side_effects", n=6, denominator=96) is True
    assert compare("comp_urinary_retention_constipation", n=3, denominator=96) is True   # 3.13 at 2 dp
    assert compare("satisfied", n=54, denominator=72) is True                           # "75" at 0 dp
    assert compare("cost_total", mean=152084.3, sd=10394.8) is True
    assert compare("nrs_p", p_value=0.0009) is True and compare("nrs_p", p_value=0.002) is False
    with pytest.raises(KeyError, match="nope"):
        compare("nope", n=1)


def test_reproduction_frame(cohort):
    tables = {"table1": table1(cohort), "table2": table2(cohort), "table3": table3(cohort)}
    rep = reproduction(tables, pain_response(cohort), km_summary(cohort, strata=()))
    assert list(rep.columns) == list(REPRODUCTION_COLUMNS)
    assert rep["matches"].dtype == bool
    # every printed statistic appears at least once; OME and the IDDS morphine dose twice
    assert set(rep["paper_key"]) == set(PAPER)
    assert (rep["paper_key"] == "ome").sum() == 2
    assert (rep["paper_key"] == "idds_init_morphine").sum() == 2
    flagged = rep[rep["ic_ids"] != ""]
    for ids, note in zip(flagged["ic_ids"], flagged["note"], strict=True):
        assert all(i in note for i in ids.split(","))
    # a list of tables is accepted too
    rep2 = reproduction(list(tables.values()), pain_response(cohort), km_summary(cohort, strata=()))
    pd.testing.assert_frame_equal(rep, rep2)


def test_reproduction_validation(cohort):
    t1 = table1(cohort)
    pain = pain_response(cohort)
    summ = km_summary(cohort, strata=())
    with pytest.raises(ValueError, match="median_months"):
        reproduction([t1], pain, summ.drop(columns=["median_months"]))
    with pytest.raises(ValueError, match="p_value"):
        reproduction([t1], pain.drop(columns=["p_value"]), summ)
    with pytest.raises(ValueError, match="paper_key"):
        reproduction([t1.drop(columns=["paper_key"])], pain, summ)
    with pytest.raises(ValueError, match="no tables"):
        reproduction([], pain, summ)
