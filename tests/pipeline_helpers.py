"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
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


def latest_raw(settings: Settings, stem: str) -> list[dict]:
    """The latest delivered version of every record of ``raw.<stem>`` (text as delivered,
    contract column names, lineage columns dropped), from the warehouse of ``settings``."""
    import duckdb

    from expectations.contracts import key_column

    key = key_column(stem)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        frame = con.execute(
            f"select * from raw.{stem} qualify row_number() over (partition by {key} "
            f"order by _delivery_id desc, _line_number desc) = 1 order by {key}").df()
    finally:
        con.close()
    frame = frame[[c for c in frame.columns if not c.startswith("_") and not c.startswith("extra_")]]
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def redeliver(settings: Settings, stem: str, rows: list[dict], delivery_id: str = "9999-12-31",
              extra_lines: tuple[str, ...] = ()) -> Path:
    """A new delivery folder holding ``<stem>.csv`` with ``rows`` (contract headers, UTF-8,
    no manifest), plus raw ``extra_lines`` appended as they are (e.g. a broken record)."""
    import csv
    import io

    folder = settings.landing / delivery_id
    folder.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    text = out.getvalue() + "".join(line + "\n" for line in extra_lines)
    (folder / f"{stem}.csv").write_text(text, encoding="utf-8")
    return folder


CHROMIUM = Path("/usr/bin/chromium")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Debian's headless Chromium with a throw-away profile (no network, no first-run)."""
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, timeout=60, check=False)
