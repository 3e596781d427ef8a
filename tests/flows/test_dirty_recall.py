"""On the generator's dirty extract every injected defect is reported under the check id
its ground truth names; on the clean extract no check fails; drill-down SQL returns exactly
the reported counts."""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pandas as pd
import pytest
from pipeline_helpers import run_cli, settings_with_landing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dirty_run(prefect_harness, tmp_path_factory):
    from synth import generate

    root = tmp_path_factory.mktemp("dirty")
    generate(root / "extract", seed=11, profile="paper", dirty=True)
    settings = settings_with_landing(root / "run", root / "extract" / "landing")
    code = run_cli(settings)
    defects = pd.read_csv(root / "extract" / "truth" / "defects.csv", dtype=str)
    return settings, code, defects


def reported(settings, defect) -> bool:
    """Is this defect reported under its check id at its record (or line)?"""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        if defect.expected_disposition == "duplicate":
            return bool(con.execute(
                "select count(*) from dq.duplicate_row where source_file = ? and line_number = ?",
                [defect.source_file, int(defect.line_number)]).fetchall()[0][0])
        if defect.rule_id.startswith("raw.") and defect.expected_disposition == "quarantined":
            return bool(con.execute(
                "select count(*) from dq.quarantine where source_file = ? and line_number = ? "
                "and list_contains(check_ids, ?)",
                [defect.source_file, int(defect.line_number), defect.rule_id]).fetchall()[0][0])
        return bool(con.execute(
            "select count(*) from dq.dq_failed_row where check_id = ? and record_key = ?",
            [defect.rule_id, defect.record_key]).fetchall()[0][0])
    finally:
        con.close()


def test_at_least_99_percent_of_injected_defects_are_reported_under_their_check_id(dirty_run):
    settings, code, defects = dirty_run
    assert code == 0  # the defects lie outside the cohort's analysis values: the run is allowed
    per_check = defaultdict(lambda: [0, 0])
    missed = []
    for defect in defects.itertuples():
        hit = reported(settings, defect)
        per_check[defect.rule_id][0] += hit
        per_check[defect.rule_id][1] += 1
        if not hit:
            missed.append((defect.rule_id, defect.source_file, defect.line_number, defect.record_key))
    recall = sum(h for h, _ in per_check.values()) / len(defects)
    print("recall per check:", {k: f"{h}/{n}" for k, (h, n) in sorted(per_check.items())})
    assert recall >= 0.99, missed


def test_every_non_passing_drilldown_returns_exactly_its_count(dirty_run):
    settings, _, _ = dirty_run
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    results = con.execute(
        "select check_id, rows_failed, drilldown_sql from dq.dq_check_result r "
        "where run_id = (select max(run_id) from dq.dq_run) and status not in ('pass', 'not_applicable')"
    ).fetchall()
    assert len(results) >= 30
    for check_id, failed, sql in results:
        assert sql, f"{check_id} has no drill-down SQL"
        assert con.execute(f"select count(*) from ({sql})").fetchall()[0][0] == failed, check_id
    con.close()


def test_on_the_clean_extract_no_check_fails_or_warns(pipeline_run):
    settings, code = pipeline_run
    assert code == 0
    con = duckdb.connect(str(settings.publish), read_only=True)
    bad = con.execute(
        "select check_id, status, rows_failed from dq.dq_check_result "
        "where run_id = (select min(run_id) from dq.dq_run) and status not in ('pass', 'not_applicable')"
    ).fetchall()
    con.close()
    assert bad == []
