"""Run dbt in-process on the working warehouse and collect its test results."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from idds.settings import PROJECT_DIR, Settings


@dataclass
class DbtOutcome:
    success: bool
    models_built: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    errors: list[str] = field(default_factory=list)
    test_results: list[dict] = field(default_factory=list)


# What the incremental staging models were built from: when any of it changes, the next
# build is a full refresh (macros/latest_delivered.sql).
BUILD_INPUTS = ("models", "macros", "seeds", "dbt_project.yml", "idds/sql/functions.sql",
                "expectations/mapping.yml")


def build_fingerprint(key: str | None) -> str:
    """A digest of the build's inputs and of the pseudonym key (one-way: a keyed hash of a
    constant, so the stored value reveals nothing of the key)."""
    digest = hashlib.sha256()
    for entry in BUILD_INPUTS:
        root = PROJECT_DIR / entry
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(hashlib.sha256(f"{key}|idds-build-fingerprint".encode()).digest())
    return digest.hexdigest()


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment for dbt: the warehouse path and where dbt may write its artefacts."""
    return {
        "IDDS_WAREHOUSE": str(settings.warehouse.resolve()),
        "DBT_PROFILES_DIR": str(PROJECT_DIR),
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_TARGET_PATH": str(settings.dbt_target_dir.resolve()),
        "DBT_LOG_PATH": str(settings.dbt_log_dir.resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }


def _release_warehouse() -> None:
    """dbt-duckdb keeps its DuckDB instance open for the process; close it after each
    invocation so the warehouse file is free for the next step (and for other processes)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    if env is not None:
        try:
            env.close()
        finally:
            DuckDBConnectionManager._ENV = None


def run_dbt(settings: Settings, args: list[str]) -> DbtOutcome:
    """Invoke ``dbt <args>`` in this process; never raises on model or test failures."""
    from dbt.cli.main import dbtRunner

    env = dbt_env(settings)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cwd = Path.cwd()
    try:
        os.chdir(PROJECT_DIR)
        result = dbtRunner().invoke([*args, "--quiet", "--no-use-colors"])
    finally:
        os.chdir(cwd)
        _release_warehouse()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outcome = DbtOutcome(success=bool(result.success))
    if result.exception is not None:
        outcome.errors.append(str(result.exception).splitlines()[0])
    for node_result in getattr(result.result, "results", None) or []:
        node = node_result.node
        status = str(node_result.status)
        if node.resource_type == "model":
            outcome.models_built += status == "success"
            if status == "error":
                outcome.errors.append(f"model {node.name}: {str(node_result.message).splitlines()[0]}")
        elif node.resource_type in ("test", "unit_test"):
            failed = status in ("fail", "error")
            outcome.tests_failed += failed
            outcome.tests_passed += not failed
            outcome.test_results.append(
                {
                    "name": node.name,
                    "status": status,
                    "failures": int(node_result.failures or 0),
                    "message": str(node_result.message or ""),
                    "compiled_sql": getattr(node, "compiled_code", None),
                    "execution_ms": 1000.0 * float(node_result.execution_time or 0.0),
                    "severity": str(getattr(node.config, "severity", "error")).lower(),
                }
            )
    return outcome
