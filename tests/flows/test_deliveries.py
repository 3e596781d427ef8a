"""The cohort is the same when the extract arrives as several overlapping deliveries, in
one go or one delivery at a time (incremental staging models), and after a full refresh."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from pipeline_helpers import run_cli, settings_under, settings_with_landing
from test_crash_safety import marts_differences
from test_registry_pipeline import cohort_and_truth, compare_with_truth

from idds.settings import PROJECT_DIR

pytestmark = pytest.mark.slow

STAGING = tuple(sorted(p.stem for p in (PROJECT_DIR / "models" / "staging").rglob("stg_*.sql")))
BIG = ("stg_emr__medication_orders", "stg_emr__measurements", "stg_emr__diagnoses")


@pytest.fixture(scope="module")
def split_extract(tmp_path_factory):
    from synth import generate

    extract = tmp_path_factory.mktemp("split")
    generate(extract, seed=11, profile="paper", deliveries=3)
    return extract


@pytest.fixture(scope="module")
def one_go(prefect_harness, split_extract, tmp_path_factory):
    """All three deliveries taken in by one run (a full build)."""
    settings = settings_with_landing(tmp_path_factory.mktemp("one_go"), split_extract / "landing")
    assert run_cli(settings) == 0
    return settings


@pytest.fixture(scope="module")
def one_at_a_time(prefect_harness, split_extract, tmp_path_factory):
    """The same deliveries arriving one per run: runs 2 and 3 build incrementally."""
    settings = settings_under(tmp_path_factory.mktemp("one_at_a_time"))
    settings.landing.mkdir(parents=True)
    deliveries = sorted(p for p in (split_extract / "landing").iterdir() if p.is_dir())
    assert len(deliveries) == 3
    for delivery in deliveries:
        shutil.copytree(delivery, settings.landing / delivery.name)
        assert run_cli(settings) == 0
    return settings


def staging_rows(settings, table: str) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(f"select * exclude (_built_through) from staging.{table} order by all").fetchall()
    finally:
        con.close()


def watermarks(settings, table: str) -> int:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(f"select count(distinct _built_through) from staging.{table}").fetchone()[0]
    finally:
        con.close()


def test_split_deliveries_with_corrections_recover_the_truth(one_go, split_extract):
    mart, truth = cohort_and_truth(one_go, split_extract)
    assert len(mart) == 96
    assert compare_with_truth(mart, truth) == {}


def test_deliveries_one_run_at_a_time_build_incrementally_to_the_same_marts(one_go, one_at_a_time):
    assert len(STAGING) == 12
    # each incremental build added rows under its own watermark (no full rebuild) ...
    for table in BIG:
        assert watermarks(one_go, table) == 1
        assert watermarks(one_at_a_time, table) == 3, table
    # ... yet every staging table holds exactly the rows a full build of all deliveries gives
    for table in STAGING:
        assert staging_rows(one_at_a_time, table) == staging_rows(one_go, table), table
    assert marts_differences(one_go.publish, one_at_a_time.publish, noise={}) == {}


def test_changed_build_inputs_force_a_full_refresh(one_go, one_at_a_time, prefect_harness):
    # a stored fingerprint that no longer matches (models, macros, mapping, seeds or the
    # pseudonym key changed) makes the next build rebuild every staging table in full
    con = duckdb.connect(str(one_at_a_time.warehouse))
    try:
        con.execute("update dq.dq_run set build_fingerprint = 'inputs-of-an-older-version' "
                    "where build_fingerprint is not null")
    finally:
        con.close()
    assert run_cli(one_at_a_time, "--force") == 0
    for table in STAGING:
        assert watermarks(one_at_a_time, table) == 1, table
        assert staging_rows(one_at_a_time, table) == staging_rows(one_go, table), table
    assert marts_differences(one_go.publish, one_at_a_time.publish, noise={}) == {}


def test_the_build_fingerprint_follows_the_inputs_and_the_key(tmp_path, monkeypatch):
    import idds.dbt as dbt_mod
    from idds.settings import PROJECT_DIR

    assert dbt_mod.build_fingerprint("key-one-0000000000") == dbt_mod.build_fingerprint("key-one-0000000000")
    assert dbt_mod.build_fingerprint("key-one-0000000000") != dbt_mod.build_fingerprint("key-two-0000000000")
    copy = tmp_path / "project"
    for entry in dbt_mod.BUILD_INPUTS:
        src = PROJECT_DIR / entry
        (copy / entry).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / entry)
    real = dbt_mod.build_fingerprint("key-one-0000000000")
    monkeypatch.setattr(dbt_mod, "PROJECT_DIR", copy)
    before = dbt_mod.build_fingerprint("key-one-0000000000")
    assert before == real  # the copy holds every input, so the change below is the only one
    mapping = copy / "expectations" / "mapping.yml"
    mapping.write_text(mapping.read_text(encoding="utf-8") + "\n# a new label\n", encoding="utf-8")
    assert dbt_mod.build_fingerprint("key-one-0000000000") != before
