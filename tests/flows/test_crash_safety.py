"""Crash safety: killed at any fault point, a rerun converges to the uninterrupted result;
one run at a time; readers of the analyst file never wait and never see a partial file.

Every run here is a real `idds run` in a subprocess (so that IDDS_FAULT's os._exit kills
a whole process), against the session's Prefect test server. The scenarios run two at a
time (the machine has two cores); the session's uninterrupted run over the same extract
(`pipeline_run`) is the baseline for all.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import copy_of, settings_with_landing

pytestmark = pytest.mark.slow

FAULT_POINTS = ("mid-file", "between-files", "mid-dbt", "mid-analysis", "mid-publish")
FAULT_EXIT = 86
IN_PROGRESS = "another run is in progress (pid "


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment of a CLI subprocess: the test key, its own work folder, the session's
    Prefect server (no temporary server per process), no fault or pause unless given."""
    import prefect.settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDDS_FAULT", "IDDS_PAUSE"))}
    env.update({
        "IDDS_WORK": str(root / "work"),
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value() or "",
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


def cli_args(settings, command: str = "run", *extra: str) -> list[str]:
    args = [sys.executable, "-m", "idds.cli", command]
    if command == "run":
        args += ["--landing", str(settings.landing), "--reports", str(settings.reports)]
    return args + ["--warehouse", str(settings.warehouse), "--publish", str(settings.publish), *extra]


def idds(settings, *extra: str, command: str = "run", env: dict | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    root = settings.warehouse.parent
    return subprocess.run(cli_args(settings, command, *extra), env=env or cli_env(root), cwd=root,
                          capture_output=True, text=True, timeout=timeout)


FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


def _sort_key(row: tuple, floats: set[int]) -> tuple:
    return tuple((0, "") if v is None else (1, f"{v:.6g}" if i in floats else repr(v))
                 for i, v in enumerate(row))


def _same(a, b, is_float: bool) -> bool:
    if not is_float or a is None or b is None:
        return a == b
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def marts_differences(expected: Path, got: Path, noise: dict | None = None) -> dict[str, str]:
    """marts tables of two analyst files, compared row for row as multisets.

    Rows must be equal exactly, except that a DOUBLE may differ in its last bits (relative
    1e-9): such tables go to ``noise``. The outcome marts are computed from
    marts.cohort_idds read without an order, and that table's physical row order varies
    between two dbt builds (two threads), so sums in the statistics can differ in the last
    bit even between two uninterrupted runs."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{expected}' as expected (read_only)")
        con.execute(f"attach '{got}' as got (read_only)")

        def columns(db: str, table: str) -> list[tuple[str, str]]:
            return con.execute(
                "select column_name, data_type from information_schema.columns where table_catalog = ? "
                "and table_schema = 'marts' and table_name = ? order by ordinal_position", [db, table]).fetchall()

        def tables(db: str) -> set[str]:
            return {r[0] for r in con.execute(
                "select table_name from information_schema.tables where table_catalog = ? "
                "and table_schema = 'marts'", [db]).fetchall()}

        differences: dict[str, str] = {}
        want, have = tables("expected"), tables("got")
        for name in want ^ have:
            differences[name] = "missing" if name in want else "unexpected"
        for name in sorted(want & have):
            cols = columns("expected", name)
            if cols != columns("got", name):
                differences[name] = f"columns {cols} != {columns('got', name)}"
                continue
            a, b = f"expected.marts.{name}", f"got.marts.{name}"
            only_a = con.execute(f"select count(*) from (select * from {a} except all select * from {b})").fetchone()[0]
            only_b = con.execute(f"select count(*) from (select * from {b} except all select * from {a})").fetchone()[0]
            if not (only_a or only_b):
                continue
            floats = {i for i, (_, kind) in enumerate(cols) if kind in FLOAT_TYPES}
            rows_a = sorted(con.execute(f"select * from {a}").fetchall(), key=lambda r: _sort_key(r, floats))
            rows_b = sorted(con.execute(f"select * from {b}").fetchall(), key=lambda r: _sort_key(r, floats))
            close = len(rows_a) == len(rows_b) and all(
                _same(x, y, i in floats) for ra, rb in zip(rows_a, rows_b, strict=True) for i, (x, y) in enumerate(zip(ra, rb, strict=True)))
            if close and noise is not None:
                noise[name] = f"{only_a} rows differ in the last bits of a DOUBLE"
            else:
                differences[name] = f"{only_a} rows only expected, {only_b} rows only got"
        return differences
    finally:
        con.close()


def explain(differences: dict[str, str]) -> str:
    """A hint when only outcome marts differ: they depend on the cohort's row order."""
    from idds.outcomes import OUTCOME_MARTS, STATUS_MART

    if differences and set(differences) <= {*OUTCOME_MARTS, STATUS_MART}:
        return ("only outcome marts differ, the dbt marts are identical: the statistics depend on the "
                "row order in which idds.outcomes.read_cohort reads marts.cohort_idds (no ORDER BY; "
                "that order varies between two dbt builds): " + repr(differences))
    return repr(differences)


def query(path: Path, sql: str):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------
# fault points
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crash_runs(prefect_harness, pipeline_run, paper_extract, tmp_path_factory) -> dict:
    """Per fault point, a run killed there, then a rerun; the baseline is the session's
    uninterrupted run over the same extract (`pipeline_run`)."""
    root = tmp_path_factory.mktemp("crash")
    baseline, code = pipeline_run

    def scenario(point: str):
        settings = settings_with_landing(root / point, paper_extract / "landing")
        t0 = time.monotonic()
        crashed = idds(settings, env=cli_env(settings.warehouse.parent, IDDS_FAULT=point))
        t1 = time.monotonic()
        state = query(settings.warehouse, "select status, stage from dq.dq_run") if settings.warehouse.exists() else []
        analyst_before = settings.publish.exists()
        rerun = idds(settings)
        t2 = time.monotonic()
        return {"settings": settings, "crashed": crashed, "state": state, "analyst_before": analyst_before,
                "rerun": rerun, "timing": f"{point}: killed after {t1 - t0:.0f} s, rerun {t2 - t1:.0f} s"}

    started = time.monotonic()
    # two at a time (two cores), the longest first
    order = ("mid-dbt", "mid-file", "between-files", "mid-analysis", "mid-publish")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p: pool.submit(scenario, p) for p in order}
        results = {k: f.result() for k, f in futures.items()}
    results["baseline"] = {"settings": baseline, "code": code}
    results["seconds"] = time.monotonic() - started
    print(f"crash suite: {len(FAULT_POINTS)} scenarios in {results['seconds']:.0f} s: "
          + "; ".join(results[k]["timing"] for k in FAULT_POINTS))
    return results


def test_the_uninterrupted_baseline_run_succeeds(crash_runs):
    assert crash_runs["baseline"]["code"] == 0
    assert crash_runs["baseline"]["settings"].publish.is_file()


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_rerun_after_a_kill_gives_the_uninterrupted_marts(crash_runs, point):
    result = crash_runs[point]
    crashed, rerun = result["crashed"], result["rerun"]
    assert crashed.returncode == FAULT_EXIT, (crashed.returncode, crashed.stderr[-2000:])
    # the killed run left its row unfinished, and no analyst file (it never got to publish)
    assert result["state"] == [{
        "mid-file": ("running", "ingest"), "between-files": ("running", "ingest"),
        "mid-dbt": ("running", "build"), "mid-analysis": ("running", "analyse"),
        # marked succeeded just before the publish (the analyst file shows it so); the
        # stage says the publish never completed, and the next run resumes it
        "mid-publish": ("succeeded", "publish")}[point]]
    assert not result["analyst_before"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    settings = result["settings"]
    noise: dict[str, str] = {}
    differences = marts_differences(crash_runs["baseline"]["settings"].publish, settings.publish, noise)
    assert differences == {}, explain(differences)
    if noise:
        warnings.warn(f"{point}: float noise only (unordered read of marts.cohort_idds): {noise}", stacklevel=1)
    # the rerun resumed the killed run: one run, succeeded, ingested once
    runs = query(settings.warehouse, "select run_id, status, stage, attempts from dq.dq_run")
    assert len(runs) == 1 and runs[0][1:] == ("succeeded", "done", 2), runs
    restart = {"mid-file": "ingest", "between-files": "ingest", "mid-dbt": "build",
               "mid-analysis": "analyse", "mid-publish": "publish"}[point]
    assert f"resuming run {runs[0][0]}, which stopped at stage " in rerun.stderr
    assert f"from {restart}" in rerun.stderr
    assert query(settings.warehouse, "select count(*), count(distinct delivery_id) from dq.dq_delivery "
                                     "where status = 'loaded'") == [(1, 1)]
    files = query(settings.warehouse, "select count(*) from dq.ingest_file")[0][0]
    assert files == len([p for p in next(settings.landing.iterdir()).iterdir() if p.name != "manifest.json"])
    # no half-written analyst file is left beside the published one
    assert not list(settings.publish.parent.glob(f".{settings.publish.name}.*"))


def test_a_no_op_run_after_the_rerun_does_nothing(crash_runs):
    """After a converged rerun the last run is complete: the next run is a no-op."""
    settings = crash_runs["mid-publish"]["settings"]
    before = settings.publish.stat().st_mtime_ns
    run = idds(settings)
    assert run.returncode == 0, run.stderr
    assert "nothing to do" in run.stdout
    assert settings.publish.stat().st_mtime_ns == before


# ---------------------------------------------------------------------------
# one run at a time; readers never wait
# ---------------------------------------------------------------------------

READER = r"""
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def snapshot():
    runs = con.execute("select count(*), max(attempts) from dq.dq_run").fetchone()
    rows = con.execute("select count(*), sum(hash(implant_id)) from marts.cohort_idds").fetchone()
    return f"{runs[0]} {runs[1]} {rows[0]} {rows[1]}"
print("ready", snapshot(), flush=True)
worst = 0.0
for line in sys.stdin:
    if line.strip() == "poll":  # query while the run goes on, measure how long a query takes
        t = time.monotonic(); snapshot(); worst = max(worst, time.monotonic() - t)
        print("polled", flush=True)
    elif line.strip() == "done":
        print("after", snapshot(), f"{worst:.3f}", flush=True)
        break
"""


def test_a_second_run_exits_1_or_waits_and_a_reader_keeps_its_snapshot(crash_runs, tmp_path):
    source = crash_runs["baseline"]["settings"]
    settings = copy_of(source, tmp_path)
    # the cheapest run that publishes: one that resumes a run killed while publishing
    con = duckdb.connect(str(settings.warehouse))
    con.execute("update dq.dq_run set stage = 'publish'")
    con.close()
    runs_before = query(settings.warehouse, "select count(*) from dq.dq_run")[0][0]
    assert query(settings.publish, "select max(attempts) from dq.dq_run")[0][0] == 1

    reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.publish)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    ready = reader.stdout.readline().split()
    assert ready[0] == "ready" and ready[2] == "1"

    hold = tmp_path / "hold"
    hold.write_text("")
    first = subprocess.Popen(
        cli_args(settings, "run"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=cli_env(tmp_path, IDDS_PAUSE_AT="locked", IDDS_PAUSE_FILE=str(hold)))
    waiter = None
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{hold}.reached").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)

        # a second run: exit 1 with one sentence, before touching anything
        before = settings.warehouse.stat().st_mtime_ns
        second = idds(settings)
        assert second.returncode == 1
        assert second.stdout == ""
        message = second.stderr.strip()
        assert message.startswith(f"error: {IN_PROGRESS}{first.pid}, started ")
        assert message.endswith("; try again later or pass --wait.") and "\n" not in message
        assert settings.warehouse.stat().st_mtime_ns == before

        # `idds status` meanwhile: names the run in progress, reads the analyst file, never waits
        status = idds(settings, command="status", env=cli_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api"))
        assert status.returncode == 0, status.stderr
        assert f"a run is in progress (pid {first.pid}" in status.stdout and "from the analyst file" in status.stdout

        # with --wait it waits for the first run, then does its own (nothing new: a no-op)
        waiter = subprocess.Popen(cli_args(settings, "run", "--wait"), cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path))
        time.sleep(3)
        assert waiter.poll() is None
        hold.unlink()  # the first run goes on, and publishes
        while first.poll() is None:
            reader.stdin.write("poll\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "polled"
            time.sleep(0.2)
        out, err = first.communicate()
        assert first.returncode == 0, err[-3000:]
        assert "from publish" in err
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err[-3000:]
        assert "waiting: another run is in progress" in err
        assert "nothing to do" in out
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    # the reader, who kept the file open across the publish, still reads the old snapshot;
    # none of its queries during the run took long (readers never wait for the run)
    reader.stdin.write("done\n")
    reader.stdin.flush()
    after = reader.stdout.readline().split()
    reader.wait(timeout=30)
    assert after[0] == "after" and after[1:5] == ready[1:5]
    assert float(after[5]) < 1.0
    # a new reader sees the new snapshot: the resumed run published (same marts)
    assert query(settings.publish, "select count(*), max(attempts) from dq.dq_run")[0] == (runs_before, 2)
    assert marts_differences(source.publish, settings.publish) == {}
    # nothing corrupted: every run recorded and finished, the waiter's no-op last
    runs = query(settings.warehouse, "select status, stage from dq.dq_run order by started_at, run_id")
    assert len(runs) == runs_before + 1 and runs[-1] == ("no_new_data", "done")
    assert {r[1] for r in runs} == {"done"} and {r[0] for r in runs} <= {"succeeded", "no_new_data"}
