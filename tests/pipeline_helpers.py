"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from idds.settings import Settings


def run_cli(settings: Settings, *extra: str) -> int:
    """`idds run` in this process, on the paths of ``settings``."""
    from idds.cli import main

    return main([
        "run", "--landing", str(settings.landing), "--warehouse", str(settings.warehouse),
        "--publish", str(settings.publish), "--reports", str(settings.reports), *extra,
    ])


def settings_under(root: Path) -> Settings:
    return Settings(
        landing=root / "landing", warehouse=root / "warehouse.duckdb", publish=root / "analyst.duckdb",
        reports=root / "reports", work=root / "work", key_file=root / "no-key-file",
    )


def settings_with_landing(root: Path, landing: Path) -> Settings:
    """Paths under ``root`` with a copy of the delivery folders in ``landing``."""
    settings = settings_under(root)
    shutil.copytree(landing, settings.landing)
    return settings


def copy_of(source: Settings, root: Path) -> Settings:
    """A copy of another run's landing folder, warehouse and analyst file under ``root``."""
    settings = settings_with_landing(root, source.landing)
    shutil.copy2(source.warehouse, settings.warehouse)
    shutil.copy2(source.publish, settings.publish)
    return settings
