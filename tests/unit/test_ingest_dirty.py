"""On the generator's dirty extract, ingestion's counts equal the ground-truth defect log."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from test_ingest import load_all, query


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    from synth import generate

    out = tmp_path_factory.mktemp("dirty")
    generate(out, seed=11, profile="paper", dirty=True)
    defects = pd.read_csv(out / "truth" / "defects.csv", dtype=str)
    return out, defects


@pytest.fixture
def loaded(dirty, settings):
    out, defects = dirty
    settings = settings.__class__(**{**settings.__dict__, "landing": out / "landing"})
    results = load_all(settings)
    return settings, results, defects


def test_reconciliation_holds_for_every_dirty_file(loaded):
    _, results, _ = loaded
    assert len(results) == 12
    for fc in results:
        assert fc.rows_read == fc.rows_loaded + fc.rows_quarantined + fc.rows_duplicate, fc.source_file


def test_quarantine_and_duplicate_counts_equal_the_ground_truth(loaded):
    _, results, defects = loaded
    raw = defects[defects.rule_id.str.startswith("raw.")]
    quarantined = Counter(raw[raw.expected_disposition == "quarantined"].source_file)
    duplicates = Counter(raw[raw.expected_disposition == "duplicate"].source_file)
    for fc in results:
        assert fc.rows_quarantined == quarantined.get(fc.source_file, 0), fc.source_file
        assert fc.rows_duplicate == duplicates.get(fc.source_file, 0), fc.source_file


def test_every_raw_defect_is_quarantined_at_its_line_under_its_check_id(loaded):
    settings, _, defects = loaded
    rows = query(settings, "select source_file, line_number, check_ids from dq.quarantine")
    where = {(f, int(line)): ids for f, line, ids in rows}
    dups = {(f, int(line)) for f, line in query(settings, "select source_file, line_number from dq.duplicate_row")}
    expected = defects[defects.rule_id.str.startswith("raw.") & defects.expected_disposition.isin(["quarantined", "duplicate"])]
    assert len(expected) >= 15
    for d in expected.itertuples():
        place = (d.source_file, int(d.line_number))
        if d.expected_disposition == "duplicate":
            assert place in dups, d
        else:
            assert place in where and d.rule_id in where[place], (d.rule_id, place, where.get(place))


def test_errors_name_delivery_file_line_and_field(loaded):
    settings, _, _ = loaded
    reasons = [r[0] for r in query(settings, "select reasons from dq.quarantine where not list_contains(check_ids, 'raw.measurements.record.malformed')")]
    assert reasons
    for text in reasons:
        assert text.startswith("2024-03-20/") and " line " in text and ("field " in text or "record" in text), text
