"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

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
