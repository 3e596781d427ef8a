"""The cohort is the same when the extract arrives as several overlapping deliveries."""

from __future__ import annotations

import pytest
from pipeline_helpers import run_cli, settings_under
from test_registry_pipeline import cohort_and_truth, compare_with_truth

pytestmark = pytest.mark.slow


def test_split_deliveries_with_corrections_recover_the_truth(prefect_harness, tmp_path):
    from synth import generate

    extract = tmp_path / "extract"
    generate(extract, seed=11, profile="paper", deliveries=3)
    settings = settings_under(tmp_path / "run")
    settings.landing.parent.mkdir(parents=True, exist_ok=True)
    (extract / "landing").rename(settings.landing)
    assert run_cli(settings) == 0
    mart, truth = cohort_and_truth(settings, extract)
    assert len(mart) == 96
    assert compare_with_truth(mart, truth) == {}
