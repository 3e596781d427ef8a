"""Run bookkeeping in ``dq.dq_run`` and the ``idds status`` listing.

Every run records the stage it has reached (``dq.dq_run.stage``). That is what makes a
rerun after a crash converge:

* a run that finds the previous run unfinished (``running`` when the lock is free means
  its process died: it is marked ``interrupted``) or ``failed`` *resumes* it: same run
  id, from the stage that did not complete (:func:`restart_stage`: from dbt build when
  it stopped in dbt, validation or the verdict, whose results are discarded first; from
  the analysis, reports or publish when it stopped there; from ingest when new
  deliveries arrived meanwhile). Ingest results committed with their delivery and stay;
* a run that finds no new delivery, the previous run complete (``succeeded`` or
  ``blocked``) and, when it was allowed, the analyst file in place, does no data work:
  it writes one ``no_new_data`` row and stops;
* anything else is an ordinary run.

``idds status`` lists recent runs from the dq tables (the warehouse, or the analyst file
while a run holds the warehouse), without the Prefect server.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from idds.runlock import holder, running_pid

RUN_COLUMNS = {"stage": "varchar", "attempts": "integer", "reports": "json", "build_fingerprint": "varchar",
               "cohort_n": "bigint", "values_set_aside": "bigint"}
UNFINISHED = ("running", "interrupted", "failed")


class TransientError(Exception):
    """A failure worth retrying after a pause (Prefect retries the task with back-off)."""


class DeliveryStillArriving(TransientError):
    """A new delivery has a file modified moments ago: it may still be being written."""


def is_transient(exc: BaseException | None) -> bool:
    """A delivery still being written, or the warehouse file locked by another process."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
        return True
    return False


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures only."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as raised:  # noqa: BLE001 - whatever the state holds
        exc = raised
    return is_transient(exc if isinstance(exc, BaseException) else None)


def new_run_id() -> str:
    """Run ids sort by start time: yyyymmddThhmmss-<6 hex>."""
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def ensure_run_columns(con: duckdb.DuckDBPyConnection) -> None:
    """dq.dq_run gains stage, attempts, reports and build_fingerprint, and dq.dq_run_stage
    records when each stage began (idempotent; older warehouses too)."""
    for name, kind in RUN_COLUMNS.items():
        con.execute(f"alter table dq.dq_run add column if not exists {name} {kind}")
    con.execute("create table if not exists dq.dq_run_stage (run_id varchar, stage varchar, "
                "entered_at timestamp, peak_rss_mb double)")


def set_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str) -> None:
    """The run enters ``stage``: dq_run.stage, and a dq_run_stage row with the time and the
    process's peak memory so far (a stage's duration and whether it raised the peak are
    read off the next row)."""
    con.execute("update dq.dq_run set stage = ? where run_id = ?", [stage, run_id])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    con.execute("insert into dq.dq_run_stage values (?, ?, ?, ?)", [run_id, stage, datetime.now(), peak_mb])


@dataclass
class Plan:
    """What a run has to do, decided under the run lock before any data work."""

    new: list[str] = field(default_factory=list)  # delivery ids with a file not taken in
    resume: str | None = None  # run id of an unfinished run to take over
    resume_stage: str | None = None
    last_run: str | None = None  # latest run that did data work
    last_status: str | None = None
    noop: bool = False
    restart: str = "ingest"  # the first stage to do: ingest, build, analyse, report or publish
    reason: str = ""
    interrupted: list[str] = field(default_factory=list)  # marked interrupted just now

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Runs a dead process left unfinished -> 'interrupted' (the caller holds the run lock):
    'running', or 'succeeded' but killed before its publish completed (stage 'publish')."""
    rows = con.execute(
        "update dq.dq_run set status = 'interrupted', ended_at = coalesce(ended_at, ?), "
        "message = coalesce(message, 'The process stopped at stage ' || coalesce(stage, '?') || "
        "'; the next run resumes it.') "
        "where status = 'running' or (status = 'succeeded' and coalesce(stage, 'done') <> 'done') "
        "returning run_id",
        [datetime.now()]).fetchall()
    return sorted(r[0] for r in rows)


def last_work_run(con: duckdb.DuckDBPyConnection) -> tuple[str, str, str | None, str | None] | None:
    """(run_id, status, verdict, stage) of the latest run that was not a no-op."""
    rows = con.execute(
        "select run_id, status, verdict, stage from dq.dq_run where status <> 'no_new_data' "
        "order by started_at desc, run_id desc limit 1").fetchall()
    return rows[0] if rows else None


def restart_stage(stopped_at: str | None, new_deliveries: bool) -> str:
    """Where a resumed run starts again. Each stage commits its work before the next one
    is recorded, so the stages before the one that was interrupted are complete:

    * new deliveries, or stopped before dbt: from ingest (a killed delivery load rolled back);
    * stopped in dbt build, validation or the verdict: from dbt build (their results are
      discarded and computed again: dbt rebuilds every model from raw);
    * stopped in the analysis, the reports or the publish: from that stage (the verdict
      and the marts it judged are committed; the analysis replaces the outcome marts in
      one transaction; reports and the analyst file are rewritten whole).
    """
    if new_deliveries or stopped_at in (None, "start", "ingest"):
        return "ingest"
    if stopped_at in ("analyse", "report", "publish"):
        return stopped_at
    return "build"


def decide(new: list[str], last: tuple | None, publish_exists: bool, force: bool = False) -> Plan:
    """The no-op / resume / ordinary-run rule (see the module docstring)."""
    plan = Plan(new=list(new))
    if last is not None:
        plan.last_run, plan.last_status = last[0], last[1]
        if last[1] in UNFINISHED:
            plan.resume, plan.resume_stage = last[0], last[3]
    if plan.resume:
        plan.restart = restart_stage(plan.resume_stage, bool(new))
        if force and plan.restart != "ingest":
            plan.restart = "build"  # --force: the whole build again, not only the stage that stopped
        plan.reason = (f"run {plan.resume} stopped ({plan.last_status} at stage {plan.resume_stage or '?'}); "
                       f"resuming it from {plan.restart}")
    elif new or force:
        plan.reason = (f"{len(new)} new deliver{'y' if len(new) == 1 else 'ies'}: {', '.join(new)}"
                       if new else "rebuild asked for (--force)")
    elif last is None:
        plan.reason = "first run"
    elif last[2] == "allowed" and not publish_exists:
        plan.reason = f"run {last[0]} was allowed but the analyst file is missing; rebuilding it"
    else:
        plan.noop = True
        hint = "; after a waiver or catalogue change, rebuild with --force" if last[1] == "blocked" else ""
        plan.reason = f"no new delivery since run {last[0]} ({last[1]}{hint})"
    return plan


def record_noop(con: duckdb.DuckDBPyConnection, run_id: str, flow_run_id: str | None, plan: Plan,
                landing: Path, code_version: str) -> None:
    now = datetime.now()
    message = f"No new delivery in {landing}; nothing to do (the last run, {plan.last_run}, {plan.last_status})."
    con.execute(
        "insert into dq.dq_run (run_id, flow_run_id, started_at, ended_at, status, verdict, message, "
        "code_version, landing, deliveries, stage, attempts) "
        "values (?, ?, ?, ?, 'no_new_data', null, ?, ?, ?, '[]', 'done', 1)",
        [run_id, flow_run_id or "", now, now, message, code_version, str(landing)])


def _settling(folder: Path, settle_seconds: float) -> str | None:
    """The newest file of a delivery folder when it changed under ``settle_seconds`` ago."""
    if settle_seconds <= 0:
        return None
    now = time.time()
    newest = max((p for p in [folder, *folder.iterdir()]), key=lambda p: p.stat().st_mtime)
    age = now - newest.stat().st_mtime
    return f"{newest.name} changed {age:.0f} s ago" if age < settle_seconds else None


def plan_run(settings, *, force: bool = False, settle_seconds: float = 0.0, noop_run_id: str | None = None,
             flow_run_id: str | None = None, code_version: str = "") -> Plan:
    """Decide what this run has to do (the caller holds the run lock); record a no-op run.

    Marks runs left 'running' by a dead process as interrupted, finds the new deliveries
    (a file, by name and content, not taken in before), applies the rule of
    :func:`decide`, and when nothing is to be done writes the ``no_new_data`` row under
    ``noop_run_id``. Raises DeliveryStillArriving when a new delivery changed less than
    ``settle_seconds`` ago (Prefect retries later).
    """
    from idds.dq import ensure_dq_schema
    from idds.ingest.files import discover, ready
    from idds.ingest.load import ensure_raw_tables, is_new
    from idds.mapping import load_mapping
    from idds.pseudonym import load_key
    from idds.warehouse import connect

    mapping = load_mapping()
    with connect(settings.warehouse, load_key(settings)) as con:
        ensure_dq_schema(con)
        ensure_run_columns(con)
        ensure_raw_tables(con, mapping)
        interrupted = mark_interrupted(con)
        new, waiting = ready([d for d in discover(settings.landing, mapping) if is_new(con, d)],
                             settings.quiet_seconds)
        for delivery in new:
            busy = _settling(delivery.path, settle_seconds)
            if busy:
                raise DeliveryStillArriving(
                    f"delivery {delivery.delivery_id} may still be being written ({busy}); "
                    "it is taken in once it has been quiet for "
                    f"{settle_seconds:.0f} s")
        plan = decide([d.delivery_id for d in new], last_work_run(con), settings.publish.is_file(), force)
        if waiting:
            plan.reason += f"; {waiting}"
        plan.interrupted = interrupted
        if plan.noop and noop_run_id:
            record_noop(con, noop_run_id, flow_run_id, plan, settings.landing, code_version)
    return plan


# ---------------------------------------------------------------------------
# idds status
# ---------------------------------------------------------------------------

RECENT_SQL = """
with loads as (
    select run_id,
           count(*) filter (where status = 'loaded') as deliveries_loaded,
           count(*) filter (where status = 'refused') as deliveries_refused,
           string_agg(delivery_id, ', ' order by delivery_id) as delivery_ids
    from dq.dq_delivery group by run_id
), rec as (
    select run_id, count(*) as files, sum(rows_read) as rows_read, sum(rows_loaded) as rows_loaded,
           sum(rows_quarantined) as rows_quarantined, sum(rows_duplicate) as rows_duplicate
    from dq.dq_reconciliation group by run_id
)
select r.run_id, r.started_at, r.ended_at, r.status, r.verdict, r.message, {stage}, {reports},
       coalesce(l.deliveries_loaded, 0), coalesce(l.deliveries_refused, 0), l.delivery_ids,
       coalesce(c.files, 0), coalesce(c.rows_loaded, 0), coalesce(c.rows_quarantined, 0),
       coalesce(c.rows_duplicate, 0)
from dq.dq_run r left join loads l using (run_id) left join rec c using (run_id)
order by r.started_at desc, r.run_id desc
limit ?
"""

FIELDS = ("run_id", "started_at", "ended_at", "status", "verdict", "message", "stage", "reports",
          "deliveries_loaded", "deliveries_refused", "delivery_ids", "files", "rows_loaded",
          "rows_quarantined", "rows_duplicate")


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[dict]:
    columns = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'dq' "
        "and table_name = 'dq_run'").fetchall()}
    if not columns:
        return []
    sql = RECENT_SQL.format(stage="r.stage" if "stage" in columns else "null",
                            reports="r.reports" if "reports" in columns else "null")
    return [dict(zip(FIELDS, row, strict=True)) for row in con.execute(sql, [limit]).fetchall()]


def _took(run: dict) -> str:
    if not run["started_at"] or not run["ended_at"]:
        return "-"
    seconds = (run["ended_at"] - run["started_at"]).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _loaded(run: dict) -> str:
    if run["status"] == "no_new_data":
        return "nothing new"
    parts = []
    if run["deliveries_loaded"]:
        n = run["deliveries_loaded"]
        parts.append(f"{n} deliver{'y' if n == 1 else 'ies'} ({run['delivery_ids']}), {run['files']} files, "
                     f"{run['rows_loaded']:,} rows loaded, {run['rows_quarantined']:,} quarantined, "
                     f"{run['rows_duplicate']:,} duplicate")
    if run["deliveries_refused"]:
        parts.append(f"{run['deliveries_refused']} refused")
    return "; ".join(parts) or "no delivery (rebuild)"


def format_runs(runs: list[dict], live: bool = True) -> list[str]:
    """One line a run (+ report paths, + the message of a run that did not succeed).
    ``live``: read from the warehouse with no run in progress, so a row still 'running' (or
    'succeeded' at stage publish: published is the last step) belongs to a dead process."""
    lines = []
    for run in runs:
        status = run["status"] or "?"
        if live and (status == "running" or (status == "succeeded" and run["stage"] == "publish")):
            status = "interrupted"
        if status in ("running", "interrupted", "failed") and run["stage"]:
            status += f" at {run['stage']}"
        started = run["started_at"].strftime("%Y-%m-%d %H:%M:%S") if run["started_at"] else "?"
        lines.append(f"{run['run_id']}  {started}  {_took(run):>7}  {status:<22} "
                     f"verdict {run['verdict'] or '-':<8} {_loaded(run)}")
        reports = json.loads(run["reports"]) if run["reports"] else {}
        for kind in ("validation", "study"):
            if reports.get(kind):
                lines.append(f"    {kind} report: {reports[kind]}")
        if run["message"] and run["status"] not in ("succeeded", "no_new_data"):
            lines.append(f"    {run['message']}")
    return lines


def _open_read_only(path: Path, attempts: int = 3) -> duckdb.DuckDBPyConnection:
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def print_status(warehouse: Path, publish: Path, limit: int = 10, out=sys.stdout) -> int:
    """Print recent runs; 0 when something was read, 1 when there is nothing to read.

    While a run holds the run lock the warehouse is left alone (opening it, even read-only,
    could get in the run's way): the runs are read from the analyst file, which holds the
    dq tables as of the last publish, and the run in progress is named from the lock file.
    """
    pid = running_pid(warehouse)
    if pid is not None:
        print(f"a run is in progress ({holder(warehouse)}).", file=out)
    source = None
    if pid is None and warehouse.is_file():
        source = warehouse
    elif publish.is_file():
        source = publish
    if source is None and pid is not None:
        print(f"no analyst file yet ({publish}); the runs are listed here once this run is done.", file=out)
        return 0
    if source is None:
        print(f"no runs yet: neither {warehouse} nor {publish} exists.", file=out)
        return 1
    try:
        con = _open_read_only(source)
    except duckdb.IOException:
        if source == warehouse and publish.is_file():
            source = publish
            con = _open_read_only(source)
        else:
            raise
    try:
        runs = recent_runs(con, limit)
    finally:
        con.close()
    note = "" if source == warehouse else " (from the analyst file: runs up to its last publish)"
    print(f"recent runs in {source}{note}:", file=out)
    if not runs:
        print("  none", file=out)
        return 0
    for line in format_runs(runs, live=source == warehouse):
        print(line, file=out)
    return 0
