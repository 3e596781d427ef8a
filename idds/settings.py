"""Settings: one place, environment variables with the ``IDDS_`` prefix and CLI flags.

Every path has a default under ``data/`` of the working directory. The pseudonymisation
key is never stored in the repository: it comes from ``IDDS_PSEUDONYM_KEY`` or from a key
file outside the repository (``IDDS_PSEUDONYM_KEY_FILE``, default
``~/.config/idds/pseudonym.key``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The repository root: holds dbt_project.yml, profiles.yml, models/ and seeds/."""

DEFAULT_KEY_FILE = Path("~/.config/idds/pseudonym.key")


class ConfigError(Exception):
    """Bad usage or configuration: the CLI prints the message and exits 2."""


def quiet_third_party_defaults() -> None:
    """No telemetry from Prefect, GX or dbt (closed hospital networks; no noise in logs)."""
    for name, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        # the temporary Prefect server of an `idds run` may start slowly on a busy machine
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }.items():
        os.environ.setdefault(name, value)


def env_override(name: str, default, kind=str):
    """The environment's value of ``name`` converted by ``kind``, else ``default``."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default).expanduser()


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes."""

    landing: Path = field(default_factory=lambda: _env_path("IDDS_LANDING", "data/landing"))
    warehouse: Path = field(
        default_factory=lambda: _env_path("IDDS_WAREHOUSE", "data/warehouse.duckdb")
    )
    publish: Path = field(default_factory=lambda: _env_path("IDDS_PUBLISH", "data/analyst.duckdb"))
    reports: Path = field(default_factory=lambda: _env_path("IDDS_REPORTS", "data/reports"))
    work: Path = field(default_factory=lambda: _env_path("IDDS_WORK", "data/work"))
    key_file: Path = field(
        default_factory=lambda: _env_path("IDDS_PSEUDONYM_KEY_FILE", str(DEFAULT_KEY_FILE))
    )
    # a delivery without a manifest is taken in once its files have been quiet this long
    quiet_seconds: float = field(default_factory=lambda: env_override("IDDS_QUIET_SECONDS", 60.0, float))

    def with_overrides(self, **overrides: Path | str | None) -> Settings:
        """Return a copy with the given non-empty overrides applied (CLI flags)."""
        given = {k: Path(v).expanduser() for k, v in overrides.items() if v}
        if "warehouse" in given and "work" not in given and not os.environ.get("IDDS_WORK"):
            # the working files (dbt artefacts, GX context) live beside the warehouse they serve
            given["work"] = given["warehouse"].parent / "work"
        return replace(self, **given)

    @property
    def dbt_target_dir(self) -> Path:
        return self.work / "dbt-target"

    @property
    def dbt_log_dir(self) -> Path:
        return self.work / "dbt-logs"

    @property
    def gx_dir(self) -> Path:
        return self.work / "gx"


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` (and missing parents) owner-only, mode 0700; an existing
    one is tightened to 0700. For folders that hold identifiers outside the warehouse
    file: the work folder, whose ``ingest/<run_id>/`` holds decoded copies of deliveries."""
    path = Path(path)
    old = os.umask(0o077)  # missing parents are created owner-only too
    try:
        path.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old)
    os.chmod(path, 0o700)
    return path


