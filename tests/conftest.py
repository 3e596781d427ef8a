"""Shared fixtures: one Prefect test harness per session, a key, temporary warehouses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["IDDS_PSEUDONYM_KEY"] = "test-key-not-for-production-0001"
# deliveries the tests write by hand (no manifest) are complete when a run starts
os.environ.setdefault("IDDS_QUIET_SECONDS", "0")

from pipeline_helpers import run_cli, settings_under, settings_with_landing  # noqa: E402

from idds.settings import Settings, quiet_third_party_defaults  # noqa: E402

quiet_third_party_defaults()


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for the whole session (its start-up costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every path lies in a temporary folder."""
    return settings_under(tmp_path)


@pytest.fixture(scope="session")
def paper_extract(tmp_path_factory) -> Path:
    """The calibrated synthetic extract (paper profile, one delivery), written once."""
    from synth import generate

    out = tmp_path_factory.mktemp("paper")
    generate(out, seed=11, profile="paper", deliveries=1)
    return out


@pytest.fixture(scope="session")
def pipeline_run(prefect_harness, paper_extract, tmp_path_factory):
    """One pipeline run over the paper extract, shared by the tests that only read it."""
    settings = settings_with_landing(tmp_path_factory.mktemp("run"), paper_extract / "landing")
    code = run_cli(settings)
    return settings, code


@pytest.fixture(scope="session")
def quirks_extract(tmp_path_factory) -> Path:
    """The paper extract plus one ordinary clinical quirk per reachable blocking check
    (``idds synth --quirks``; the expected set-asides are in truth/quirks.csv)."""
    from synth import generate

    out = tmp_path_factory.mktemp("quirks")
    generate(out, seed=11, profile="paper", deliveries=1, quirks=True)
    return out


@pytest.fixture(scope="session")
def quirks_run(prefect_harness, quirks_extract, tmp_path_factory):
    """One pipeline run over the quirks extract: (settings, exit code, stdout lines)."""
    import contextlib
    import io

    settings = settings_with_landing(tmp_path_factory.mktemp("quirks-run"), quirks_extract / "landing")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(settings)
    return settings, code, out.getvalue().splitlines()
