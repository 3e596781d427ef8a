"""The ``registry-pipeline`` flow: ingest, build, validate, analyse, report, publish."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata

from prefect import flow, get_run_logger, runtime, task

from flows.ingest import TRANSIENT_RETRIES, ingest_deliveries
from idds import __version__
from idds.checks import (
    blocking_failures,
    load_waivers,
    record_failed_rows,
    release_policy,
    settle_results,
)
from idds.dbt import build_fingerprint, run_dbt
from idds.dq import ensure_dq_schema, record_check_result
from idds.gx_runner import run_checkpoint
from idds.ingest.load import FAULT_ENV, fault_point
from idds.outcomes import write_outcome_marts
from idds.pseudonym import load_key
from idds.publish import publish
from idds.report.study import build_study_report
from idds.report.validation import build_validation_report
from idds.runlock import pause_point, run_lock
from idds.setaside import (
    apply_set_asides,
    collect_set_asides,
    record_ingest_checks,
    verdict_message,
)
from idds.settings import Settings
from idds.status import (
    TransientError,
    ensure_run_columns,
    new_run_id,
    plan_run,
    set_stage,
)
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

MID_DBT_AFTER_MODELS = 6  # IDDS_FAULT=mid-dbt kills the run once this many models were rebuilt


def _flow_run_id() -> str:
    return str(runtime.flow_run.id or "")


def _stage(settings: Settings, run_id: str, stage: str) -> None:
    """Record the stage the run enters (what `idds status` and the next run see)."""
    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, stage)
    pause_point(stage)


@task(name="plan_run", **TRANSIENT_RETRIES)
def plan_run_task(settings: Settings, force: bool, settle_seconds: float, noop_run_id: str) -> dict:
    """New deliveries, and whether to resume an unfinished run or do nothing at all."""
    plan = plan_run(settings, force=force, settle_seconds=settle_seconds, noop_run_id=noop_run_id,
                    flow_run_id=_flow_run_id(), code_version=__version__)
    return plan.as_dict()


@task(name="start_run", **TRANSIENT_RETRIES)
def start_run(settings: Settings, run_id: str, resume: bool = False, restart: str = "ingest") -> None:
    """A new dq_run row; or, resuming an unfinished run, the same row back to 'running'.
    Resumed from ingest or dbt build, the results of the later stages are discarded (all
    computed again; the ingest results committed with their deliveries and stay)."""
    versions = {p: metadata.version(p) for p in PACKAGES}
    with connect(settings.warehouse, load_key(settings)) as con:
        ensure_dq_schema(con)
        ensure_run_columns(con)
        con.execute("begin transaction")
        if resume:
            redo_checks = restart in ("ingest", "build")
            if redo_checks:
                con.execute("delete from dq.dq_check_result where run_id = ? and engine <> 'pandera' "
                            "and check_id not in ('pipeline.reconciliation.identity', 'pipeline.delivery.refused')",
                            [run_id])
                con.execute("delete from dq.dq_failed_row where run_id = ?", [run_id])
            con.execute(
                "update dq.dq_run set flow_run_id = ?, ended_at = null, status = 'running', "
                "verdict = case when ? then null else verdict end, message = null, code_version = ?, "
                "package_versions = ?, stage = 'start', attempts = coalesce(attempts, 1) + 1 where run_id = ?",
                [_flow_run_id(), redo_checks, __version__, json.dumps(versions), run_id])
        else:
            con.execute(
                "insert into dq.dq_run (run_id, flow_run_id, started_at, ended_at, status, verdict, message, "
                "code_version, landing, deliveries, package_versions, stage, attempts) "
                "values (?, ?, ?, null, 'running', null, null, ?, ?, null, ?, 'start', 1)",
                [run_id, _flow_run_id(), datetime.now(), __version__, str(settings.landing),
                 json.dumps(versions)],
            )
        con.execute("commit")


@task(name="recall_verdict", **TRANSIENT_RETRIES)
def recall_verdict(settings: Settings, run_id: str) -> dict:
    """A run resumed after its verdict: the verdict, blocking checks and reports it had."""
    with connect(settings.warehouse, load_key(settings)) as con:
        verdict, reports, deliveries, message, cohort_n, n_values = con.execute(
            "select verdict, reports, deliveries, message, cohort_n, values_set_aside from dq.dq_run "
            "where run_id = ?", [run_id]).fetchall()[0]
        failing = blocking_failures(con, run_id)
    return {"verdict": verdict, "blocking": failing, "message": message, "cohort_n": cohort_n,
            "values_set_aside": n_values or 0,
            "reports": json.loads(reports) if reports else {},
            "deliveries": json.loads(deliveries) if deliveries else []}


@task(name="record_deliveries", **TRANSIENT_RETRIES)
def record_deliveries(settings: Settings, run_id: str) -> list[str]:
    """dq_run.deliveries: the deliveries this run took in (a resumed run: all attempts)."""
    with connect(settings.warehouse, load_key(settings)) as con:
        ids = [r[0] for r in con.execute(
            "select delivery_id from dq.dq_delivery where run_id = ? and status = 'loaded' "
            "order by delivery_id", [run_id]).fetchall()]
        con.execute("update dq.dq_run set deliveries = ? where run_id = ?", [json.dumps(ids), run_id])
    return ids


@task(name="record_ingest", **TRANSIENT_RETRIES)
def record_ingest(settings: Settings, run_id: str, ingested: list[dict]) -> None:
    """The run-level checks of the ingest: every delivery taken in
    (``pipeline.delivery.refused``) and every delivered record reconciled
    (``pipeline.reconciliation.identity``); either failing blocks the run."""
    with connect(settings.warehouse, load_key(settings)) as con:
        record_ingest_checks(con, run_id, ingested)


@contextmanager
def _mid_dbt_fault() -> Iterator[None]:
    """IDDS_FAULT=mid-dbt: kill the process from inside ``dbt build`` once some models
    were rebuilt (a dbt event callback), so a rerun meets a half-rebuilt warehouse."""
    if os.environ.get(FAULT_ENV) != "mid-dbt":
        yield
        return
    import dbt.cli.main as dbt_main

    original = dbt_main.dbtRunner
    built = []

    def on_event(event) -> None:
        if event.info.name == "LogModelResult" and str(getattr(event.data, "status", "")).lower() != "error":
            built.append(event.data.node_info.node_name)
            if len(built) >= MID_DBT_AFTER_MODELS:
                fault_point("mid-dbt")

    class FaultyRunner(original):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), on_event], **kwargs)

    dbt_main.dbtRunner = FaultyRunner
    try:
        yield
    finally:
        dbt_main.dbtRunner = original


def _warehouse_locked(errors: list[str]) -> bool:
    return any("could not set lock" in e.lower() for e in errors)


@task(name="build_models", **TRANSIENT_RETRIES)
def build_models(settings: Settings, run_id: str) -> dict:
    """dbt build (staging -> intermediate -> marts with their tests); results into dq."""
    _stage(settings, run_id, "build")
    key = load_key(settings)
    fingerprint = build_fingerprint(key)
    with connect(settings.warehouse, key) as con:
        last = con.execute(
            "select build_fingerprint from dq.dq_run where build_fingerprint is not null "
            "order by started_at desc limit 1").fetchall()
    # incremental staging models are exact only over the inputs they were built from
    full_refresh = not last or last[0][0] != fingerprint
    with _mid_dbt_fault():
        outcome = run_dbt(settings, ["build", "--full-refresh"] if full_refresh else ["build"])
    if not outcome.success and _warehouse_locked(outcome.errors):
        raise TransientError("dbt could not lock the warehouse: " + outcome.errors[0])
    with connect(settings.warehouse, key) as con:
        if outcome.success:
            con.execute("update dq.dq_run set build_fingerprint = ? where run_id = ?", [fingerprint, run_id])
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
    return {"success": outcome.success, "models": outcome.models_built, "full_refresh": full_refresh,
            "tests_passed": outcome.tests_passed, "tests_failed": outcome.tests_failed,
            "errors": outcome.errors}


@task(name="validate_marts", **TRANSIENT_RETRIES)
def validate_marts(settings: Settings, run_id: str, reports_dir: str) -> dict:
    from pathlib import Path

    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, "validate")
        return run_checkpoint(con, run_id, settings.gx_dir, Path(reports_dir) / "data_docs")


@task(name="decide_verdict", **TRANSIENT_RETRIES)
def decide_verdict(settings: Settings, run_id: str, built: bool = True) -> dict:
    """Set aside the values that blocking checks found wrong in the cohort (waivers
    restore them), check the run-level conditions, settle every result (catalogue
    thresholds, severities, waivers); blocked only when a run-level check failed.
    One transaction: a run killed here redoes the whole step. ``built``: False when the
    ingest blocked the run and nothing was built (nothing to set aside)."""
    waivers = load_waivers()
    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, "verdict")
        con.execute("begin transaction")
        con.execute(
            """
            insert into dq.dq_failed_row
            select run_id, unnest(check_ids), 'raw.' || file_stem, idds_patient_key(patient_id),
                   coalesce(record_key, delivery_id || '/' || source_file || ':' || line_number), reasons
            from dq.quarantine where run_id = ?
            """, [run_id])
        released = {}
        if built:
            collect_set_asides(con, run_id, waivers)
            released = apply_set_asides(con, run_id, release_policy())
        settle_results(con, run_id, waivers)
        failing = blocking_failures(con, run_id)
        verdict = "blocked" if failing else "allowed"
        message = verdict_message(con, run_id, failing, released)
        con.execute("update dq.dq_run set verdict = ?, message = ? where run_id = ?",
                    [verdict, message, run_id])
        con.execute("commit")
    return {"verdict": verdict, "blocking": failing, "message": message, **released}


def _order_cohort_rows(con) -> None:
    """Store marts.cohort_idds in implant_id order (same rows, same table definition).

    The statistics are sensitive to the order of their input rows (sums in another order
    differ in the last bits; tied ranks in the proportional-hazards test differ in the
    third digit), the outcome marts read the cohort without an ORDER BY, and the order in
    which dbt's parallel build stores the rows varies from build to build. Stored in key
    order (DuckDB scans return insertion order), every run, resumed or not, computes the
    same outcome marts from the same cohort."""
    con.execute("begin transaction")
    con.execute("create or replace temp table _cohort_ordered as "
                "select * from marts.cohort_idds order by implant_id")
    con.execute("delete from marts.cohort_idds")
    con.execute("insert into marts.cohort_idds select * from _cohort_ordered order by implant_id")
    con.execute("drop table _cohort_ordered")
    con.execute("commit")


@task(name="analyse_outcomes", **TRANSIENT_RETRIES)
def analyse_outcomes(settings: Settings, run_id: str) -> dict:
    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, "analyse")
        _order_cohort_rows(con)
        counts = write_outcome_marts(con)
    fault_point("mid-analysis")
    return counts


@task(name="write_reports", **TRANSIENT_RETRIES)
def write_reports(settings: Settings, run_id: str, with_study: bool) -> dict:
    """The steward's validation report always; the study report when the run was allowed."""
    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, "report")
        paths = {"validation": str(build_validation_report(con, run_id, settings.reports))}
        if with_study:
            paths["study"] = str(build_study_report(con, run_id, settings.reports))
        con.execute("update dq.dq_run set reports = ? where run_id = ?", [json.dumps(paths), run_id])
    return paths


def _remove_stale_publish_files(target) -> None:
    """Half-written analyst files of a run that died while publishing (the lock is ours,
    so no other publish is under way)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp*"):
        stale.unlink(missing_ok=True)


@task(name="publish_marts", **TRANSIENT_RETRIES)
def publish_marts(settings: Settings, run_id: str) -> dict:
    """Replace the analyst file. The run's row is marked succeeded first (stage still
    'publish') so that the analyst file shows it so; the stage becomes 'done' only after
    the rename, and a run killed in between is found unfinished and resumed."""
    with connect(settings.warehouse, load_key(settings)) as con:
        set_stage(con, run_id, "publish")
        _remove_stale_publish_files(settings.publish)
        con.execute("update dq.dq_run set status = 'succeeded', ended_at = ? where run_id = ?",
                    [datetime.now(), run_id])
        return publish(con, settings.publish)


@task(name="finish_run", **TRANSIENT_RETRIES)
def finish_run(settings: Settings, run_id: str, status: str, verdict: str | None, message: str | None) -> None:
    with connect(settings.warehouse, load_key(settings)) as con:
        con.execute(
            "update dq.dq_run set ended_at = coalesce(?, ended_at), status = ?, verdict = coalesce(?, verdict), "
            "message = coalesce(?, message) where run_id = ?",
            [None if status == "succeeded" else datetime.now(), status, verdict, message, run_id],
        )
        if status != "failed":
            set_stage(con, run_id, "done")


@flow(name="registry-pipeline")
def registry_pipeline(
    landing: str | None = None,
    warehouse: str | None = None,
    publish_path: str | None = None,
    reports: str | None = None,
    run_id: str | None = None,
    wait: bool = False,
    force: bool = False,
    settle_seconds: float = 0.0,
) -> dict:
    """One pipeline run; returns the run id, its status, verdict and where the outputs are.

    Holds the run lock for its whole length (``wait``: wait for a run in progress instead
    of failing). Does nothing but record a ``no_new_data`` run when no delivery is new and
    the last run is complete (``force`` rebuilds anyway); resumes an unfinished run.
    A new delivery changed less than ``settle_seconds`` ago is waited for (retried).
    """
    logger = get_run_logger()
    settings = Settings().with_overrides(
        landing=landing, warehouse=warehouse, publish=publish_path, reports=reports)
    with run_lock(settings.warehouse, wait=wait):
        pause_point("locked")
        run_id = run_id or new_run_id()
        plan = plan_run_task(settings, force, settle_seconds, run_id)
        for stopped in plan["interrupted"]:
            logger.warning("Run %s had stopped without finishing (process killed); marked interrupted.",
                           stopped)
        if plan["noop"]:
            logger.info("Run %s: %s; nothing to do.", run_id, plan["reason"])
            return {"run_id": run_id, "status": "no_new_data", "verdict": None, "blocking": [],
                    "deliveries": 0, "reason": plan["reason"], "resumed": False, "report": None,
                    "study_report": None, "analyst_file": None, "gx": None}
        resumed = plan["resume"] is not None
        run_id = plan["resume"] or run_id
        logger.info("Run %s: %s; landing %s -> warehouse %s", run_id, plan["reason"], settings.landing,
                    settings.warehouse)
        return _work(settings, run_id, resumed, plan, logger)


STAGE_ORDER = ("ingest", "build", "analyse", "report", "publish")


def ingest_blocked(ingested: list[dict]) -> str | None:
    """The first delivery that stopped the ingest (refused, or not reconciled), in words."""
    first = next((r for r in ingested if r["status"] in ("refused", "unreconciled")), None)
    return None if first is None else first["message"]


def _work(settings: Settings, run_id: str, resumed: bool, plan: dict, logger) -> dict:
    """The stages from ``plan['restart']`` on (all of them for a new run)."""
    restart = plan["restart"] if resumed else "ingest"

    def due(stage: str) -> bool:
        return STAGE_ORDER.index(stage) >= STAGE_ORDER.index(restart)

    start_run(settings, run_id, resumed, restart)
    verdict: dict = {}
    ingested: list[dict] = []
    gx_summary = None
    reports: dict = {}
    try:
        if due("ingest"):
            _stage(settings, run_id, "ingest")
            shutil.rmtree(settings.work / "ingest", ignore_errors=True)  # working copies a killed run left
            ingested = ingest_deliveries(run_id, str(settings.landing), str(settings.warehouse))
            record_ingest(settings, run_id, ingested)
            deliveries = record_deliveries(settings, run_id)
        stopped = ingest_blocked(ingested)
        if due("build") and stopped:
            logger.error("%s Nothing is built or published in this run.", stopped)
            verdict = decide_verdict(settings, run_id, built=False)
        elif due("build"):
            built = build_models(settings, run_id)
            logger.info("dbt build (%s): %d models, %d tests passed, %d failed.",
                        "full refresh" if built["full_refresh"] else "incremental",
                        built["models"], built["tests_passed"], built["tests_failed"])
            gx_summary = validate_marts(settings, run_id, str(settings.reports))
            verdict = decide_verdict(settings, run_id)
            if not due("ingest"):
                deliveries = recall_verdict(settings, run_id)["deliveries"]
        else:
            verdict = recall_verdict(settings, run_id)
            reports, deliveries = verdict["reports"], verdict["deliveries"]
            logger.info("Resuming at %s: verdict %s, recorded before the interruption.", restart,
                        verdict["verdict"])
        allowed = verdict["verdict"] == "allowed"
        published: dict = {}
        if allowed and due("analyse"):
            outcomes = analyse_outcomes(settings, run_id)
            logger.info("Outcome marts: %s", ", ".join(f"{k} ({v} rows)" for k, v in outcomes.items()))
        elif not allowed:
            logger.warning(verdict["message"])
        if due("report") or not reports:
            reports = write_reports(settings, run_id, allowed)
        if allowed:
            published = publish_marts(settings, run_id)
            logger.info("Published %d tables to %s", len(published), settings.publish)
    except Exception as exc:
        finish_run(settings, run_id, "failed", None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    finish_run(settings, run_id, "succeeded" if allowed else "blocked", verdict["verdict"], verdict["message"])
    return {
        "run_id": run_id,
        "status": "succeeded" if allowed else "blocked",
        "verdict": verdict["verdict"],
        "blocking": verdict["blocking"],
        "deliveries": len([r for r in ingested if r["status"] == "loaded"]),
        "delivery_ids": deliveries,
        "reason": plan["reason"],
        "resumed": resumed,
        "restart": restart,
        "report": reports["validation"],
        "study_report": reports.get("study"),
        "analyst_file": str(settings.publish) if published else None,
        "gx": gx_summary,
        "message": verdict["message"],
        "cohort_n": verdict.get("cohort_n"),
        "values_set_aside": verdict.get("values_set_aside", 0),
    }


# The flow `idds serve` deploys: the same flow, retried once as a whole 15 minutes after a
# failure (transient failures are already retried task by task). A module attribute, so
# that the deployment's entrypoint loads it with its retries.
scheduled_pipeline = registry_pipeline.with_options(retries=1, retry_delay_seconds=900)
