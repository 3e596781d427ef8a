"""The ``registry-pipeline`` flow: ingest, build, validate, analyse, report, publish."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from importlib import metadata

from prefect import flow, get_run_logger, runtime, task

from flows.ingest import ingest_deliveries
from idds import __version__
from idds.dbt import run_dbt
from idds.checks import blocking_failures, load_waivers, record_failed_rows, settle_results
from idds.dq import ensure_dq_schema, record_check_result
from idds.gx_runner import run_checkpoint
from idds.ingest.load import fault_point
from idds.outcomes import write_outcome_marts
from idds.pseudonym import load_key
from idds.publish import publish
from idds.report.study import build_study_report
from idds.report.validation import build_validation_report
from idds.settings import Settings
from idds.warehouse import connect

RULE_TEST = re.compile(r"^r_([a-z]{2})_(\d{2})_")


def dbt_check_id(test_name: str) -> str:
    """dbt test name -> check id: singular rule tests keep their R-* id (r_dt_04_… -> R-DT-04),
    tests named raw__<file>__<column>__<rule> report as raw.<file>.<column>.<rule>."""
    match = RULE_TEST.match(test_name)
    if match:
        return f"R-{match.group(1).upper()}-{match.group(2)}"
    if test_name.startswith("raw__"):  # raw-data rules checked on the models: raw.<file>.<column>.<rule>
        return test_name.replace("__", ".")
    return f"dbt.{test_name}"


PACKAGES = ("duckdb", "dbt-core", "dbt-duckdb", "prefect", "pandera", "great-expectations", "lifelines")


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@task(name="start_run")
def start_run(settings: Settings, run_id: str) -> None:
    versions = {p: metadata.version(p) for p in PACKAGES}
    with connect(settings.warehouse, load_key(settings)) as con:
        ensure_dq_schema(con)
        con.execute(
            "insert into dq.dq_run values (?, ?, ?, null, 'running', null, null, ?, ?, null, ?)",
            [run_id, str(runtime.flow_run.id or ""), datetime.now(), __version__,
             str(settings.landing), json.dumps(versions)],
        )


@task(name="build_models")
def build_models(settings: Settings, run_id: str) -> dict:
    """dbt build (staging -> intermediate -> marts with their tests); results into dq."""
    outcome = run_dbt(settings, ["build"])
    with connect(settings.warehouse, load_key(settings)) as con:
        for t in outcome.test_results:
            check_id = dbt_check_id(t["name"])
            status = {"pass": "pass", "fail": "fail", "warn": "warn", "skipped": "not_applicable"}.get(
                t["status"], "error")
            record_check_result(
                con, run_id, check_id, "dbt", t["failures"], None, status=status,
                drilldown_sql=t["compiled_sql"], execution_ms=t["execution_ms"], detail=t["message"][:500],
            )
            if t["failures"] and t["compiled_sql"]:
                in_cohort = record_failed_rows(con, run_id, check_id, t["name"], t["compiled_sql"])
                con.execute(
                    "update dq.dq_check_result set rows_in_cohort = ? where run_id = ? and check_id = ?",
                    [in_cohort, run_id, check_id])
        if outcome.errors:
            record_check_result(
                con, run_id, "pipeline.dbt.build", "pipeline", len(outcome.errors), None,
                status="error", detail="; ".join(outcome.errors)[:1000],
            )
    return {"success": outcome.success, "models": outcome.models_built,
            "tests_passed": outcome.tests_passed, "tests_failed": outcome.tests_failed,
            "errors": outcome.errors}


@task(name="validate_marts")
def validate_marts(settings: Settings, run_id: str, reports_dir: str) -> dict:
    from pathlib import Path

    with connect(settings.warehouse, load_key(settings)) as con:
        return run_checkpoint(con, run_id, settings.gx_dir, Path(reports_dir) / "data_docs")


@task(name="decide_verdict")
def decide_verdict(settings: Settings, run_id: str) -> dict:
    """Settle every result (catalogue thresholds, severities, waivers); blocked when a
    blocking check failed. Returns the verdict and the failing ids."""
    with connect(settings.warehouse, load_key(settings)) as con:
        con.execute(
            """
            insert into dq.dq_failed_row
            select run_id, unnest(check_ids), 'raw.' || file_stem, idds_patient_key(patient_id),
                   coalesce(record_key, delivery_id || '/' || source_file || ':' || line_number), reasons
            from dq.quarantine where run_id = ?
            """, [run_id])
        settle_results(con, run_id, load_waivers())
        failing = blocking_failures(con, run_id)
        verdict = "blocked" if failing else "allowed"
        message = (
            "Blocked by " + ", ".join(failing[:10]) + "; the analyst file keeps the last good run."
            if failing else None
        )
        con.execute("update dq.dq_run set verdict = ?, message = ? where run_id = ?",
                    [verdict, message, run_id])
    return {"verdict": verdict, "blocking": failing, "message": message}


@task(name="analyse_outcomes")
def analyse_outcomes(settings: Settings) -> dict:
    with connect(settings.warehouse, load_key(settings)) as con:
        counts = write_outcome_marts(con)
    fault_point("mid-analysis")
    return counts


@task(name="write_reports")
def write_reports(settings: Settings, run_id: str, with_study: bool) -> dict:
    """The steward's validation report always; the study report when the run was allowed."""
    with connect(settings.warehouse, load_key(settings)) as con:
        paths = {"validation": str(build_validation_report(con, run_id, settings.reports))}
        if with_study:
            paths["study"] = str(build_study_report(con, run_id, settings.reports))
    return paths


@task(name="publish_marts")
def publish_marts(settings: Settings) -> dict:
    with connect(settings.warehouse, load_key(settings)) as con:
        return publish(con, settings.publish)


@task(name="finish_run")
def finish_run(settings: Settings, run_id: str, status: str, verdict: str | None, message: str | None) -> None:
    with connect(settings.warehouse, load_key(settings)) as con:
        con.execute(
            "update dq.dq_run set ended_at = ?, status = ?, verdict = coalesce(?, verdict), "
            "message = coalesce(?, message) where run_id = ?",
            [datetime.now(), status, verdict, message, run_id],
        )


@flow(name="registry-pipeline")
def registry_pipeline(
    landing: str | None = None,
    warehouse: str | None = None,
    publish_path: str | None = None,
    reports: str | None = None,
    run_id: str | None = None,
) -> dict:
    """One pipeline run; returns the run id, verdict and where the outputs are."""
    logger = get_run_logger()
    settings = Settings().with_overrides(
        landing=landing, warehouse=warehouse, publish=publish_path, reports=reports)
    run_id = run_id or new_run_id()
    logger.info("Run %s: landing %s -> warehouse %s", run_id, settings.landing, settings.warehouse)
    start_run(settings, run_id)
    try:
        ingested = ingest_deliveries(run_id, str(settings.landing), str(settings.warehouse))
        built = build_models(settings, run_id)
        logger.info("dbt build: %d models, %d tests passed, %d failed.",
                    built["models"], built["tests_passed"], built["tests_failed"])
        gx_summary = validate_marts(settings, run_id, str(settings.reports))
        verdict = decide_verdict(settings, run_id)
        published: dict = {}
        if verdict["verdict"] == "allowed":
            outcomes = analyse_outcomes(settings)
            logger.info("Outcome marts: %s", ", ".join(f"{k} ({v} rows)" for k, v in outcomes.items()))
        else:
            logger.warning(verdict["message"])
        reports = write_reports(settings, run_id, verdict["verdict"] == "allowed")
        if verdict["verdict"] == "allowed":
            published = publish_marts(settings)
            logger.info("Published %d tables to %s", len(published), settings.publish)
    except Exception as exc:
        finish_run(settings, run_id, "failed", None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    finish_run(settings, run_id, "blocked" if verdict["verdict"] == "blocked" else "succeeded",
               verdict["verdict"], verdict["message"])
    return {
        "run_id": run_id,
        "verdict": verdict["verdict"],
        "blocking": verdict["blocking"],
        "deliveries": len(ingested),
        "report": reports["validation"],
        "study_report": reports.get("study"),
        "analyst_file": str(settings.publish) if published else None,
        "gx": gx_summary,
    }
