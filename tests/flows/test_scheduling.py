"""Scheduled runs: the served deployment, the run lock, the no-op rule, `idds status`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import copy_of, settings_under

NOWHERE = "http://127.0.0.1:9/api"  # no Prefect server listens here


def env_without_prefect(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDDS_FAULT", "IDDS_PAUSE"))}
    env.update({"IDDS_WORK": str(root / "work"), "PREFECT_API_URL": NOWHERE,
                "PREFECT_HOME": str(root / "prefect-home"), **extra})
    return env



def query(path: Path, sql: str, params: list | None = None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def cli(settings, command: str, *extra: str, env: dict) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "idds.cli", command, "--warehouse", str(settings.warehouse),
            "--publish", str(settings.publish)]
    if command == "run":
        args += ["--landing", str(settings.landing), "--reports", str(settings.reports)]
    return subprocess.run([*args, *extra], env=env, cwd=settings.warehouse.parent, capture_output=True,
                          text=True, timeout=300)


# ---------------------------------------------------------------------------
# idds serve: the deployment
# ---------------------------------------------------------------------------

def test_serve_builds_a_nightly_deployment_one_run_at_a_time_with_retries(settings):
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.flows import load_flow_from_entrypoint

    from flows import ingest, registry
    from idds.serve import build_deployment

    deployment = build_deployment(settings)
    assert deployment.name == "nightly" and deployment.flow_name == "registry-pipeline"
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Asia/Shanghai"
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
    params = deployment.parameters
    assert params["wait"] is True and params["settle_seconds"] > 0
    assert params["warehouse"] == str(settings.warehouse.resolve()) and Path(params["landing"]).is_absolute()
    # the runner loads the flow from the entrypoint: the retried variant of registry-pipeline
    flow = load_flow_from_entrypoint(deployment.entrypoint)
    assert flow.name == "registry-pipeline" and flow.retries == 1 and flow.retry_delay_seconds == 900
    # transient failures are retried task by task, with exponential back-off
    for task in (registry.plan_run_task, registry.build_models, registry.publish_marts,
                 ingest.load_delivery_task, ingest.find_new_deliveries):
        assert task.retries == 4 and task.retry_condition_fn is not None, task.name
        assert task.retry_delay_seconds == [10, 20, 40, 80], task.name

    other = build_deployment(settings, "30 3 * * 1-5")
    assert other.schedules[0].schedule.cron == "30 3 * * 1-5"
    assert other.schedules[0].schedule.timezone == "Asia/Shanghai"


def test_the_deployment_registers_with_the_prefect_api(prefect_harness, settings):
    from prefect.client.orchestration import get_client

    from idds.serve import build_deployment

    deployment_id = build_deployment(settings, "15 1 * * *").apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.name == "nightly"
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in stored.schedules] == [
        ("15 1 * * *", "Asia/Shanghai", True)]
    assert stored.global_concurrency_limit is not None and stored.global_concurrency_limit.limit == 1
    assert stored.parameters["wait"] is True


def test_serve_refuses_a_bad_cron_expression_with_exit_2(capsys):
    from idds.cli import main

    assert main(["serve", "--cron", "every night"]) == 2
    assert "is not a cron expression" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# transient failures
# ---------------------------------------------------------------------------

def test_only_transient_failures_are_retried():
    from prefect.states import Failed

    from idds.ingest.load import ReconciliationError
    from idds.status import DeliveryStillArriving, is_transient, retry_if_transient

    locked = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held')
    assert is_transient(DeliveryStillArriving("x")) and is_transient(locked)
    assert not is_transient(ReconciliationError("x")) and not is_transient(ValueError("x"))
    assert retry_if_transient(None, None, Failed(data=locked))
    assert not retry_if_transient(None, None, Failed(data=ReconciliationError("3 read, 2 loaded")))


def test_prefect_retries_a_transient_failure_and_not_a_data_problem(prefect_harness):
    from prefect import flow, task

    from flows.registry import TRANSIENT_RETRIES
    from idds.ingest.load import ReconciliationError
    from idds.status import DeliveryStillArriving

    calls = {"transient": 0, "data": 0}
    options = {**TRANSIENT_RETRIES, "retry_delay_seconds": 0, "retry_jitter_factor": None}

    @task(**options)
    def arriving() -> str:
        calls["transient"] += 1
        if calls["transient"] < 3:
            raise DeliveryStillArriving("still being copied")
        return "loaded"

    @task(**options)
    def broken() -> str:
        calls["data"] += 1
        raise ReconciliationError("3 read, 2 loaded")

    @flow
    def probe() -> str:
        result = arriving()
        try:
            broken()
        except ReconciliationError:
            return result
        return "no error"

    assert probe() == "loaded"
    assert calls == {"transient": 3, "data": 1}


def test_a_delivery_still_being_written_is_waited_for(settings, paper_extract):
    from idds.status import DeliveryStillArriving, plan_run

    shutil.copytree(paper_extract / "landing", settings.landing)
    delivery = next(settings.landing.iterdir())
    (delivery / "followups.csv").touch()  # a file the hospital is still writing
    with pytest.raises(DeliveryStillArriving, match="may still be being written"):
        plan_run(settings, settle_seconds=60)
    plan = plan_run(settings, settle_seconds=0)
    assert plan.new == [delivery.name] and not plan.noop


# ---------------------------------------------------------------------------
# the no-op / resume rule
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("new, last, analyst, force, expected", [
    ([], None, False, False, "work"),  # first run
    ([], ("r1", "succeeded", "allowed", "done"), True, False, "noop"),
    ([], ("r1", "blocked", "blocked", "done"), True, False, "noop"),
    ([], ("r1", "succeeded", "allowed", "done"), False, False, "work"),  # analyst file gone
    ([], ("r1", "succeeded", "allowed", "done"), True, True, "work"),  # --force
    (["d2"], ("r1", "succeeded", "allowed", "done"), True, False, "work"),
    ([], ("r1", "interrupted", None, "build"), True, False, "resume"),
    (["d2"], ("r1", "failed", None, "analyse"), True, False, "resume"),
])
def test_the_no_op_and_resume_rule(new, last, analyst, force, expected):
    from idds.status import decide

    plan = decide(new, last, analyst, force)
    got = "noop" if plan.noop else "resume" if plan.resume else "work"
    assert got == expected, plan
    if expected == "resume":
        assert plan.resume == "r1" and plan.resume_stage == last[3]


@pytest.mark.parametrize("stopped_at, new, restart", [
    (None, False, "ingest"), ("start", False, "ingest"), ("ingest", False, "ingest"),
    ("build", False, "build"), ("validate", False, "build"), ("verdict", False, "build"),
    ("analyse", False, "analyse"), ("report", False, "report"), ("publish", False, "publish"),
    ("publish", True, "ingest"), ("build", True, "ingest"),
])
def test_a_resumed_run_restarts_at_the_stage_that_did_not_complete(stopped_at, new, restart):
    from idds.status import decide

    plan = decide(["d2"] if new else [], ("r1", "interrupted", None, stopped_at), True)
    assert plan.resume == "r1" and plan.restart == restart


# ---------------------------------------------------------------------------
# the run lock
# ---------------------------------------------------------------------------

def test_the_run_lock_is_exclusive_across_processes_and_reentrant_within_one(tmp_path):
    from idds.runlock import RunInProgress, run_lock, running_pid

    warehouse = tmp_path / "warehouse.duckdb"
    probe = ("import sys; from pathlib import Path; from idds.runlock import run_lock, RunInProgress\n"
             "try:\n    with run_lock(Path(sys.argv[1])): print('got it')\n"
             "except RunInProgress as e: print(e)")
    assert running_pid(warehouse) is None
    with run_lock(warehouse):
        with run_lock(warehouse):  # the flow inside `idds run` takes it again
            assert running_pid(warehouse) == os.getpid()
        other = subprocess.run([sys.executable, "-c", probe, str(warehouse)], capture_output=True, text=True)
        assert other.stdout.startswith(f"another run is in progress (pid {os.getpid()}, started ")
        assert other.stdout.strip().endswith("; try again later or pass --wait")
    assert running_pid(warehouse) is None
    other = subprocess.run([sys.executable, "-c", probe, str(warehouse)], capture_output=True, text=True)
    assert other.stdout.strip() == "got it"
    with pytest.raises(RunInProgress):  # a lock held by a live process, seen from a thread-free probe
        holder = subprocess.Popen([sys.executable, "-c",
                                   "import sys, time; from pathlib import Path; from idds.runlock import run_lock\n"
                                   "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)",
                                   str(warehouse)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            with run_lock(warehouse):
                pass
        finally:
            holder.kill()
            holder.wait()
    with run_lock(warehouse):  # a killed holder leaves no stale lock
        pass


# ---------------------------------------------------------------------------
# a run with nothing new; idds status
# ---------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_with_no_new_delivery_does_no_data_work_and_says_so(pipeline_run, tmp_path):
    source, code = pipeline_run
    assert code == 0
    settings = copy_of(source, tmp_path)
    analyst = settings.publish.read_bytes()
    started = time.monotonic()
    # no Prefect server is reachable: a no-op run never needs one
    run = cli(settings, "run", env=env_without_prefect(tmp_path))
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "no new delivery since run" in lines[0] and "nothing to do" in lines[0]
    print(f"no-op `idds run` (a subprocess, Python start-up included): {seconds:.1f} s")
    assert seconds < 15
    assert settings.publish.read_bytes() == analyst
    run_id = lines[0].split()[1].rstrip(":")
    rows = query(settings.warehouse, "select status, stage, verdict, ended_at is not null from dq.dq_run "
                                     "where run_id = ?", [run_id])
    assert rows == [("no_new_data", "done", None, True)]
    for table in ("dq_delivery", "dq_reconciliation", "dq_check_result", "dq_failed_row"):
        assert query(settings.warehouse, f"select count(*) from dq.{table} where run_id = ?", [run_id]) == [(0,)]
    assert not (settings.reports / run_id).exists()


@pytest.mark.slow
def test_the_flow_itself_is_a_no_op_without_new_data(pipeline_run, prefect_harness, tmp_path):
    """The served path: the flow plans under the lock and stops (Prefect already up)."""
    from flows.registry import registry_pipeline

    source, _ = pipeline_run
    settings = copy_of(source, tmp_path)
    started = time.monotonic()
    result = registry_pipeline(landing=str(settings.landing), warehouse=str(settings.warehouse),
                               publish_path=str(settings.publish), reports=str(settings.reports))
    seconds = time.monotonic() - started
    print(f"no-op flow run (Prefect server already up): {seconds:.1f} s")
    assert result["status"] == "no_new_data" and result["analyst_file"] is None
    assert query(settings.warehouse, "select status from dq.dq_run where run_id = ?",
                 [result["run_id"]]) == [("no_new_data",)]


@pytest.mark.slow
def test_idds_status_lists_recent_runs_without_a_prefect_server(pipeline_run, tmp_path):
    source, _ = pipeline_run
    settings = copy_of(source, tmp_path)
    assert cli(settings, "run", env=env_without_prefect(tmp_path)).returncode == 0  # a no-op run too
    status = cli(settings, "status", env=env_without_prefect(tmp_path))
    assert status.returncode == 0, status.stderr
    out = status.stdout
    runs = query(settings.warehouse, "select run_id, status, verdict from dq.dq_run order by started_at desc")
    assert out.splitlines()[0] == f"recent runs in {settings.warehouse}:"
    for run_id, run_status, verdict in runs:
        line = next(x for x in out.splitlines() if x.startswith(run_id))
        assert run_status in line and f"verdict {verdict or '-'}" in line
    latest_work = next(r for r in runs if r[1] == "succeeded")[0]
    line = next(x for x in out.splitlines() if x.startswith(latest_work))
    assert "1 delivery (" in line and "rows loaded" in line
    assert f"validation report: {source.reports / latest_work / 'validation.html'}" in out
    assert f"study report: {source.reports / latest_work / 'study.html'}" in out
    assert "nothing new" in out


def test_idds_status_with_no_runs_says_so(tmp_path):
    settings = settings_under(tmp_path)
    status = cli(settings, "status", env=env_without_prefect(tmp_path))
    assert status.returncode == 1
    assert status.stdout.startswith("no runs yet")
