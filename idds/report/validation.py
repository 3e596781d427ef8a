"""The steward's validation report: one self-contained HTML file per run, plus latest/."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import duckdb
import jinja2

from idds.report.format import count, percent, ratio

SAMPLE_QUARANTINE = 200
# Until the check catalogue assigns severities per check, a failing dbt test or GX
# expectation on the models blocks the cohort; raw-row failures are quarantined instead.
BLOCKING_ENGINES = ("dbt", "gx", "pipeline")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def build_validation_report(con: duckdb.DuckDBPyConnection, run_id: str, reports_dir: Path) -> Path:
    """Write ``<reports>/<run_id>/validation.html`` and copy it to ``<reports>/latest/``."""
    run = _rows(con, "select * from dq.dq_run where run_id = ?", [run_id])[0]
    results = _rows(
        con,
        "select check_id, engine, status, rows_failed, rows_tested, detail from dq.dq_check_result "
        "where run_id = ? order by status = 'pass', check_id, detail",
        [run_id],
    )
    for r in results:
        r["ratio"] = ratio(r["rows_failed"], r["rows_tested"])
        r["percent"] = percent(r["rows_failed"], r["rows_tested"])
    reconciliation = _rows(
        con, "select * from dq.dq_reconciliation where run_id = ? order by delivery_id, source_file", [run_id]
    )
    totals = {
        k: sum(int(r[k] or 0) for r in reconciliation)
        for k in ("rows_read", "rows_loaded", "rows_quarantined", "rows_duplicate")
    }
    quarantine = _rows(
        con,
        "select delivery_id, source_file, line_number, reasons from dq.quarantine where run_id = ? "
        "order by delivery_id, source_file, line_number limit ?",
        [run_id, SAMPLE_QUARANTINE],
    )
    n_quarantine = con.execute("select count(*) from dq.quarantine where run_id = ?", [run_id]).fetchall()[0][0]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["count"] = count
    template = env.from_string(
        resources.files("idds.report").joinpath("templates/validation.html").read_text(encoding="utf-8")
    )
    html = template.render(
        run=run,
        blocking=[r for r in results if r["status"] in ("fail", "error") and r["engine"] in BLOCKING_ENGINES],
        deliveries=_rows(con, "select * from dq.dq_delivery where run_id = ? order by delivery_id", [run_id]),
        reconciliation=reconciliation,
        totals=totals,
        results=results,
        quarantine=quarantine,
        quarantine_more=max(0, n_quarantine - len(quarantine)),
        data_docs="../data_docs/index.html",
    )
    out_dir = reports_dir / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "validation.html"
    path.write_text(html, encoding="utf-8")
    latest = reports_dir / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, latest / "validation.html")
    return path
