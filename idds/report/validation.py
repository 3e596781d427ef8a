"""The steward's validation report: one self-contained HTML file per run, plus latest/.

``build_validation_report(con, run_id, reports_dir)`` reads the ``dq`` schema (and the
cohort marts when they exist) and writes ``<reports_dir>/<run_id>/validation.html``,
copied to ``<reports_dir>/latest/validation.html``. Nine sections, in the order of the
steward's guide:

1. provenance: the run, its Prefect flow run, deliveries, files with sha256 and row
   counts, package versions;
2. verdict: cohort build allowed or blocked, with the blocking failures;
3. nothing lost: rows read = loaded + quarantined + duplicate, per file and in total,
   every term linked to its drill-down;
4. the Kahn matrix: category / subcategory x status, with totals that add up;
5. changes since the previous run: new, resolved, persisting, regressed failures;
6. the results table (filterable and sortable in the browser, state in the URL hash);
7. a drill-down for every non-passing result: sample failing rows, masked, and the SQL;
8. waivers: active, expiring within 14 days, expired (a waived result whose waiver has
   expired is shown as a failure again);
9. impact on the study: the attrition flow and the survival inputs at risk.

Everything is aggregated in SQL: one query per section, never one per check, so the
build stays fast with hundreds of checks and a long history. Quarantined raw rows are
read only through :func:`idds.publish.masked_quarantine_sql` and delivered headers only
through :func:`idds.publish.masked_drift_sql`; failing rows have their identifier shapes
and quoted values masked; and any token of a sample equal to an identifier the warehouse
knows is withheld as well (:func:`idds.publish.guard_identifiers_sql`). The HTML has no
external reference (inline CSS and JS) and works from ``file://``.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from idds.checks import waivers_path
from idds.publish import guard_identifiers_sql, masked_drift_sql, masked_quarantine_sql
from idds.report.format import count, percent, short_hash, threshold_pct, violations
from idds.warehouse import IDENTIFIER_MASK

__all__ = ["BLOCKING_ENGINES", "build_validation_report"]

SAMPLE_ROWS = 20
TREND_RUNS = 10
EXPIRING_DAYS = 14
DATA_DOCS = "../data_docs/index.html"
# Fallback while a check has no catalogue row (or the catalogue is empty): a failing dbt
# test, GX expectation or pipeline step blocks the cohort; raw-row failures are quarantined.
BLOCKING_ENGINES = ("dbt", "gx", "pipeline")

# statuses, worst first; the rank orders them (higher is worse)
STATUSES = ("error", "fail", "warn", "set_aside", "waived", "pass_with_violations", "pass", "not_applicable")
RANK = {s: len(STATUSES) - i for i, s in enumerate(STATUSES)}  # error 7 ... not_applicable 1
UNKNOWN_RANK = RANK["waived"]
PROBLEM = ("warn", "set_aside", "fail", "error")  # a "failure" for the changes section
SEVERITIES = ("blocking", "warning", "info", "unclassified")
KAHN_ROWS = (
    ("conformance", "value"), ("conformance", "relational"), ("conformance", "computational"),
    ("completeness", None),
    ("plausibility", "uniqueness"), ("plausibility", "atemporal"), ("plausibility", "temporal"),
)
CHANGE_KINDS = ("new", "regressed", "persisting", "resolved")
WAIVER_STATES = ("expired", "expiring", "active")
WITHHELD = IDENTIFIER_MASK  # what a withheld identifier shows (idds.warehouse)
QUARANTINE_TEXT = ("record_key", "raw_row", "reasons")
_RANK_SQL = "case {col} " + " ".join(f"when '{s}' then {r}" for s, r in RANK.items()) + f" else {UNKNOWN_RANK} end"


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    """The columns of ``schema.table`` in the current database ([] when it does not exist)."""
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "and table_catalog = current_database() order by ordinal_position", [schema, table]).fetchall()]


def _status_label(status: str | None) -> str:
    return (status or "unknown").replace("_", " ")


def _json(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# results with their effective status (an expired waiver makes a waived result fail)
# ---------------------------------------------------------------------------

def _expired_sql(alias: str = "w", run_alias: str = "r") -> str:
    ref = f"cast(coalesce({run_alias}.started_at, current_timestamp) as date)"
    return f"(coalesce({alias}.state = 'expired', false) or coalesce({alias}.expires < {ref}, false))"


def _effective_results_sql(run_filter: str) -> str:
    """Results of the runs selected by ``run_filter`` (an expression over ``run_id``)."""
    expired = _expired_sql()
    return f"""
        with res as (select * from dq.dq_check_result where {run_filter}),
        wv as (
            select w.run_id, w.check_id,
                   count(*) filter (where {expired}) as n_expired,
                   count(*) filter (where not {expired}) as n_live,
                   min(w.expires) filter (where {expired}) as expired_on
            from dq.dq_waiver w left join dq.dq_run r on r.run_id = w.run_id
            where {run_filter.replace('run_id', 'w.run_id')}
            group by all
        )
        select res.*,
               case when res.status = 'waived' and coalesce(wv.n_expired, 0) > 0
                         and coalesce(wv.n_live, 0) = 0 then 'fail' else res.status end as eff_status,
               coalesce(wv.n_live, 0) as waivers_live, wv.expired_on
        from res left join wv on wv.run_id = res.run_id and wv.check_id = res.check_id
    """


def _per_check_by_run(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, dict[str, dict]]:
    """check_id -> run_id -> {status (worst), rows_failed (sum)}: one aggregate query."""
    if not run_ids:
        return {}
    sql = f"""
        select check_id, run_id, max({_RANK_SQL.format(col='eff_status')}) as rank,
               arg_max(eff_status, {_RANK_SQL.format(col='eff_status')}) as status,
               sum(rows_failed) as rows_failed, count(*) as n
        from ({_effective_results_sql('list_contains(?, run_id)')})
        group by all
    """
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in _rows(con, sql, [run_ids, run_ids]):
        out[r["check_id"]][r["run_id"]] = r
    return out


# ---------------------------------------------------------------------------
# the sections
# ---------------------------------------------------------------------------

def _run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    found = _rows(con, "select * from dq.dq_run where run_id = ?", [run_id])
    run = found[0] if found else {"run_id": run_id, "flow_run_id": None, "started_at": None,
                                  "ended_at": None, "status": "not recorded", "verdict": None,
                                  "message": "This run is not in dq.dq_run.", "code_version": None,
                                  "landing": None, "deliveries": None, "package_versions": None}
    versions = _json(run.get("package_versions"))
    run["package_versions"] = versions if isinstance(versions, dict) else {}
    run["deliveries"] = _json(run.get("deliveries"))
    return run


def _history(con: duckdb.DuckDBPyConnection, run: dict) -> tuple[list[str], str | None]:
    """The last TREND_RUNS runs up to this one (oldest first) and the previous run."""
    if run.get("started_at") is None:
        return [run["run_id"]], None
    earlier = [r[0] for r in con.execute(
        "select run_id from dq.dq_run where run_id <> ? and started_at is not null "
        "and coalesce(status, '') <> 'no_new_data' "
        "and (started_at < ? or (started_at = ? and run_id < ?)) "
        "order by started_at desc, run_id desc limit ?",
        [run["run_id"], run["started_at"], run["started_at"], run["run_id"], TREND_RUNS - 1]).fetchall()]
    return list(reversed(earlier)) + [run["run_id"]], (earlier[0] if earlier else None)


def _provenance(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    deliveries = _rows(con, "select * from dq.dq_delivery where run_id = ? order by delivery_id", [run_id])
    files = _rows(con, """
        select f.delivery_id, f.source_file, f.file_stem, f.sha256, f.encoding, f.status, f.message,
               r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_duplicate
        from dq.ingest_file f
        left join dq.dq_reconciliation r
               on r.run_id = f.run_id and r.delivery_id = f.delivery_id and r.source_file = f.source_file
        where f.run_id = ? order by f.delivery_id, f.source_file
    """, [run_id])
    by_delivery: dict[str, list] = defaultdict(list)
    for f in files:
        f["sha_short"] = short_hash(f["sha256"])
        by_delivery[f["delivery_id"]].append(f)
    known = {d["delivery_id"] for d in deliveries}
    for delivery_id in by_delivery:
        if delivery_id not in known:
            deliveries.append({"delivery_id": delivery_id, "status": None, "has_manifest": None,
                               "n_files": None, "message": None})
    for d in deliveries:
        d["files"] = by_delivery.get(d["delivery_id"], [])
    # delivered headers as they may be shown (a header line may be a record: masked, withheld)
    drift = _rows(con, _guarded(con, masked_drift_sql(
        f"(select * from dq.schema_drift where run_id = {_lit(run_id)})"), ("delivered_header", "kept_as"))
        + " order by delivery_id, source_file")
    return {"deliveries": deliveries, "drift": drift}


def _quarantine_sample(run_id: str, by: str, where: str = "", keep: tuple[str, ...] = ()) -> str:
    """Up to SAMPLE_ROWS quarantined rows of the run per ``by`` (a partition), masked as in
    the analyst file (:func:`idds.publish.masked_quarantine_sql`). The sample is drawn
    first and masked after: masking is per row, and costs more than the draw."""
    columns = ", unnest(check_ids) as check_id" if "check_id" in keep else ""
    source = (f"(select * from (select *{columns} from dq.quarantine where run_id = {_lit(run_id)}) "
              f"where true {where} "
              f"qualify row_number() over (partition by {by} order by line_number) <= {SAMPLE_ROWS})")
    return masked_quarantine_sql(source, keep=keep)


def _phi_names() -> list[str]:
    from expectations.contracts import CONTRACTS

    return sorted({c for schema in CONTRACTS.values() for c, col in schema.columns.items()
                   if col.metadata.get("phi")})


def _guarded(con: duckdb.DuckDBPyConnection, inner: str, columns: tuple[str, ...],
             json_columns: tuple[str, ...] = ()) -> str:
    """``inner`` with the text ``columns`` guarded against raw identifiers.

    Belt and braces behind the masking done upstream: in JSON values the fields named like
    an identifier are masked as in the analyst file, and any token equal to an identifier
    the warehouse knows (an MRN, name, ID or phone of ``raw.patients`` or of a quarantined
    record) is replaced (:func:`idds.publish.guard_identifiers_sql`).
    """
    if json_columns:
        names = "|".join(_phi_names())
        replace = ", ".join(
            f"regexp_replace({c}, '\"({names})\"\\s*:\\s*\"(?:[^\"\\\\]|\\\\.)*\"', "
            f"'\"\\1\": \"***\"', 'g') as {c}" for c in json_columns)
        inner = f"select * replace ({replace}) from ({inner})"
    return guard_identifiers_sql(con, inner, columns)


def _reconciliation(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    files = _rows(con, "select * from dq.dq_reconciliation where run_id = ? order by delivery_id, source_file",
                  [run_id])
    terms = ("rows_read", "rows_loaded", "rows_quarantined", "rows_duplicate", "rows_superseded")
    totals = {k: sum(int(f.get(k) or 0) for f in files) for k in terms}
    totals["holds"] = totals["rows_read"] == (
        totals["rows_loaded"] + totals["rows_quarantined"] + totals["rows_duplicate"])
    samples: dict[tuple, list] = defaultdict(list)
    sample = _quarantine_sample(run_id, "delivery_id, source_file")
    for q in _rows(con, _guarded(con, sample, QUARANTINE_TEXT) + " order by delivery_id, source_file, line_number"):
        samples[(q["delivery_id"], q["source_file"])].append(q)
    raw_tables = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' "
        "and table_catalog = current_database()").fetchall()}
    has_duplicate_rows = bool(_table_columns(con, "dq", "duplicate_row"))
    masked = " ".join(masked_quarantine_sql("dq.quarantine").split())
    for i, f in enumerate(files):
        f["i"] = i
        f["holds"] = int(f["rows_read"] or 0) == (
            int(f["rows_loaded"] or 0) + int(f["rows_quarantined"] or 0) + int(f["rows_duplicate"] or 0))
        where = (f"run_id = {_lit(run_id)} and delivery_id = {_lit(f['delivery_id'])} "
                 f"and source_file = {_lit(f['source_file'])}")
        f["sql_read"] = f"select * from dq.ingest_file where {where};"
        stem = f.get("file_stem")
        f["sql_loaded"] = (
            f"select * from raw.{_ident(stem)} where _run_id = {_lit(run_id)} "
            f"and _delivery_id = {_lit(f['delivery_id'])} and _source_file = {_lit(f['source_file'])};"
            if stem and stem in raw_tables else None)
        f["sql_quarantined"] = f"select * from ({masked}) where {where} order by line_number;"
        f["sql_duplicate"] = (f"select * from dq.duplicate_row where {where};" if has_duplicate_rows else None)
        f["quarantine_sample"] = samples.get((f["delivery_id"], f["source_file"]), [])
    return {"files": files, "totals": totals}


def _catalogue_size(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select count(*) from dq.dq_check").fetchall()[0][0]


def _threshold(c: dict) -> str:
    parts = []
    for level in ("warn", "fail"):
        bits = []
        if c.get(f"{level}_pct") is not None:
            bits.append(threshold_pct(c[f"{level}_pct"]))
        if c.get(f"{level}_count") is not None:
            n = int(c[f"{level}_count"])
            bits.append(f"{n:,} row" + ("" if n == 1 else "s"))
        if bits:
            parts.append(f"{level} at ≥ " + " or ≥ ".join(bits))
    return "; ".join(parts)


def _results(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    rows = _rows(con, f"""
        select e.*, c.check_id is not null as catalogued, c.engine as catalogue_engine,
               c.kahn_category, c.kahn_subcategory, c.severity, c.warn_pct, c.fail_pct,
               c.warn_count, c.fail_count, c.description, c.rationale, c.what_to_do,
               fr.n_rows as failed_rows_stored, fr.n_patients as failed_row_patients
        from ({_effective_results_sql('run_id = ?')}) e
        left join dq.dq_check c on c.check_id = e.check_id
        left join (select check_id, count(*) as n_rows, count(distinct patient_key) as n_patients
                   from dq.dq_failed_row where run_id = ? group by all) fr on fr.check_id = e.check_id
        order by {_RANK_SQL.format(col='eff_status')} desc,
                 case c.severity when 'blocking' then 0 when 'warning' then 1 when 'info' then 2 else 3 end,
                 e.check_id, e.detail
    """, [run_id, run_id, run_id])
    for i, r in enumerate(rows):
        r["i"] = i
        r["status"], r["recorded_status"] = r["eff_status"], r["status"]
        r["engine"] = r["engine"] or r["catalogue_engine"] or "unknown"
        r["severity"] = r["severity"] or "unclassified"
        r["kahn_category"] = r["kahn_category"] or "unclassified"
        r["kahn_subcategory"] = r["kahn_subcategory"] or ""
        r["threshold"] = _threshold(r)
        r["ratio"] = violations(r["rows_failed"], r["rows_tested"])
        r["percent"] = percent(r["rows_failed"], r["rows_tested"])
        r["pct_sort"] = (100.0 * r["rows_failed"] / r["rows_tested"]
                         if r["rows_failed"] is not None and r["rows_tested"] else -1)
        if r["patients_affected"] is None and r["failed_row_patients"]:
            r["patients"], r["patients_note"] = r["failed_row_patients"], "counted from the stored failing rows"
        else:
            r["patients"], r["patients_note"] = r["patients_affected"], None
        r["waiver_expired"] = r["recorded_status"] == "waived" and r["status"] == "fail"
        r["drill"] = r["status"] not in ("pass", "not_applicable")
        r["rank"] = RANK.get(r["status"], UNKNOWN_RANK)
    return rows


def _is_blocking(r: dict, catalogue_empty: bool) -> bool:
    if r["status"] not in ("fail", "error"):
        return False
    if r["catalogued"] and not catalogue_empty:
        return r["severity"] == "blocking"
    return r["engine"] in BLOCKING_ENGINES


def _kahn(results: list[dict]) -> dict:
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        key = (r["kahn_category"], r["kahn_subcategory"] or None)
        counts[key][r["status"]] += 1
    statuses = list(STATUSES) + sorted({r["status"] for r in results} - set(STATUSES))
    keys = list(KAHN_ROWS) + sorted((k for k in counts if k not in KAHN_ROWS and k[0] != "unclassified"),
                                    key=lambda k: (k[0], k[1] or ""))
    keys += sorted((k for k in counts if k[0] == "unclassified"), key=lambda k: k[1] or "")
    rows = []
    for category, sub in keys:
        cells = counts.get((category, sub), {})
        rows.append({"category": category, "subcategory": sub or "",
                     "cells": [cells.get(s, 0) for s in statuses], "total": sum(cells.values())})
    col_totals = [sum(row["cells"][j] for row in rows) for j in range(len(statuses))]
    return {"statuses": statuses, "rows": rows, "col_totals": col_totals, "total": sum(col_totals)}


def _changes(results: list[dict], by_run: dict, run_id: str, previous: str | None) -> dict:
    now: dict[str, dict] = {}
    for r in results:  # the current run from the rows shown (effective statuses)
        cur = now.setdefault(r["check_id"], {"status": r["status"], "rank": r["rank"], "rows_failed": None,
                                              "i": r["i"]})
        if r["rank"] > cur["rank"]:
            cur.update(status=r["status"], rank=r["rank"], i=r["i"])
        if r["rows_failed"] is not None:
            cur["rows_failed"] = (cur["rows_failed"] or 0) + int(r["rows_failed"])
    out: dict[str, list] = {k: [] for k in CHANGE_KINDS}
    if previous is None:
        return {"previous": None, "lists": out}
    checks = set(now) | {c for c, runs in by_run.items() if previous in runs}
    for check_id in sorted(checks):
        cur = now.get(check_id)
        prev = by_run.get(check_id, {}).get(previous)
        failing_now = cur is not None and cur["status"] in PROBLEM
        failing_before = prev is not None and prev["status"] in PROBLEM
        item = {"check_id": check_id, "now": cur["status"] if cur else "not run",
                "before": prev["status"] if prev else "not run",
                "rows_now": cur["rows_failed"] if cur else None,
                "rows_before": prev["rows_failed"] if prev else None,
                "i": cur["i"] if cur else None}
        if failing_now and not failing_before:
            kind = "new"
        elif failing_before and not failing_now:
            kind = "resolved"
        elif failing_now and failing_before:
            worse = RANK.get(cur["status"], UNKNOWN_RANK) > RANK.get(prev["status"], UNKNOWN_RANK)
            more = (cur["rows_failed"] is not None and prev["rows_failed"] is not None
                    and cur["rows_failed"] > prev["rows_failed"])
            kind = "regressed" if worse or more else "persisting"
        else:
            continue
        out[kind].append(item)
    return {"previous": previous, "lists": out}


def _trends(results: list[dict], by_run: dict, runs: list[str]) -> None:
    for r in results:
        history = by_run.get(r["check_id"], {})
        dots = []
        for run in runs:
            h = history.get(run)
            if h is None:
                dots.append({"run": run, "status": "none", "title": f"{run}: not run"})
            else:
                status = h["status"]
                rows = "" if h["rows_failed"] is None else f" ({int(h['rows_failed']):,} violating rows)"
                dots.append({"run": run, "status": status, "title": f"{run}: {_status_label(status)}{rows}"})
        r["trend"] = dots


def _samples(con: duckdb.DuckDBPyConnection, run_id: str, results: list[dict]) -> None:
    """Up to SAMPLE_ROWS failing rows (and masked quarantined rows) per non-passing check."""
    check_ids = sorted({r["check_id"] for r in results if r["drill"]})
    failed: dict[str, list] = defaultdict(list)
    quarantined: dict[tuple, list] = defaultdict(list)
    if check_ids:
        # a quarantined record's failing row carries its record key and its reasons (with the
        # values quoted): identifier shapes and quoted values are masked as in the analyst file
        sample = f"""
            select check_id, table_name, patient_key, idds_mask_identifiers(record_key) as record_key,
                   case when starts_with(table_name, 'raw.') then idds_mask_reasons(offending_value, null, null)
                        else idds_mask_identifiers(offending_value) end as offending_value
            from dq.dq_failed_row where run_id = {_lit(run_id)} and list_contains(?, check_id)
            qualify row_number() over (partition by check_id order by table_name, record_key, patient_key)
                    <= {SAMPLE_ROWS}
        """
        for f in _rows(con, _guarded(con, sample, ("patient_key", "record_key", "offending_value"),
                                     ("offending_value",)) + " order by check_id, table_name, record_key, patient_key",
                       [check_ids]):
            failed[f["check_id"]].append(f)
        sample = _quarantine_sample(run_id, "check_id, delivery_id, source_file",
                                    "and list_contains(?, check_id)", keep=("check_id",))
        for q in _rows(con, _guarded(con, sample, QUARANTINE_TEXT)
                       + " order by check_id, delivery_id, source_file, line_number", [check_ids]):
            quarantined[(q["check_id"], f"{q['delivery_id']}/{q['source_file']}")].append(q)
    # patients behind the quarantined rows of a check, where the engine did not count them
    patients = {(c, w): n for c, w, n in con.execute("""
        select check_id, delivery_id || '/' || source_file, count(distinct patient_id)
        from (select unnest(check_ids) as check_id, delivery_id, source_file, patient_id
              from dq.quarantine where run_id = ?)
        where list_contains(?, check_id) group by all
    """, [run_id, check_ids]).fetchall()} if check_ids else {}
    for r in results:
        n = patients.get((r["check_id"], r["detail"] or ""))
        if r["drill"] and r["patients"] is None and n is not None:
            r["patients"], r["patients_note"] = n, "counted from the quarantined rows"
    by_check: dict[str, list] = defaultdict(list)
    for (check_id, _), rows in quarantined.items():
        by_check[check_id].extend(rows)
    masked = " ".join(masked_quarantine_sql("dq.quarantine").split())
    for r in results:
        if not r["drill"]:
            continue
        r["failed_sample"] = failed.get(r["check_id"], [])
        q = quarantined.get((r["check_id"], r["detail"] or ""))
        where = ""
        if q is not None:
            delivery_id, _, source_file = (r["detail"] or "").partition("/")
            where = f" and delivery_id = {_lit(delivery_id)} and source_file = {_lit(source_file)}"
        else:
            q = by_check.get(r["check_id"], [])[:SAMPLE_ROWS]
        r["quarantine_sample"] = q
        r["quarantine_sql"] = (
            f"select * from ({masked}) where run_id = {_lit(run_id)} "
            f"and list_contains(check_ids, {_lit(r['check_id'])}){where} order by line_number;"
            if q else None)
        r["failed_rows_sql"] = (
            f"select * from dq.dq_failed_row where run_id = {_lit(run_id)} "
            f"and check_id = {_lit(r['check_id'])};" if r["failed_rows_stored"] else None)


def _waivers(con: duckdb.DuckDBPyConnection, run: dict, results: list[dict]) -> dict:
    ref = _as_date(run.get("started_at")) or date.today()
    rows = _rows(con, "select * from dq.dq_waiver where run_id = ? order by expires nulls last, check_id, record_key",
                 [run["run_id"]])
    status_of: dict[str, dict] = {}
    for r in results:
        status_of.setdefault(r["check_id"], r)
    groups: dict[str, list] = {s: [] for s in WAIVER_STATES}
    for w in rows:
        expires = _as_date(w.get("expires"))
        days = (expires - ref).days if expires else None
        computed = ("active" if days is None else "expired" if days < 0
                    else "expiring" if days <= EXPIRING_DAYS else "active")
        stored = w.get("state") if w.get("state") in WAIVER_STATES else "active"
        state = max(computed, stored, key=lambda s: -WAIVER_STATES.index(s))
        w["state_shown"], w["days_left"] = state, days
        result = status_of.get(w["check_id"])
        w["result_status"] = result["status"] if result else "not run"
        w["i"] = result["i"] if result else None
        w["drill"] = bool(result and result["drill"])
        groups[state].append(w)
    return {"groups": groups, "reference": ref, "total": len(rows), "horizon": EXPIRING_DAYS}


def _set_aside(con: duckdb.DuckDBPyConnection, run_id: str, waivers_file: str) -> dict:
    """The values set aside in the run (and those a waiver restored), with what to do."""
    if not _table_columns(con, "dq", "dq_set_aside"):
        return {"rows": [], "active": 0, "waived": 0, "patients": 0, "by_variable": [], "waivers_file": waivers_file}
    rows = _rows(con, """
        select s.patient_key, s.variable, s.check_id, s.value, s.status, s.first_seen_run_id, s.source,
               s.waiver_owner, s.waiver_expires, c.description, c.what_to_do
        from dq.dq_set_aside s left join dq.dq_check c using (check_id)
        where s.run_id = ? order by s.status, s.check_id, s.patient_key, s.variable""", [run_id])
    # one row per patient and rule: its variables together, and one waiver to paste
    grouped: dict[tuple, dict] = {}
    for r in rows:
        g = grouped.setdefault((r["status"], r["check_id"], r["patient_key"]), {**r, "variables": []})
        g["variables"].append({"variable": r["variable"], "value": r["value"]})
    expires = date.today().replace(year=date.today().year + 1).isoformat()
    for g in grouped.values():
        g["waiver_expired"] = g["status"] == "set_aside" and g["waiver_owner"] is not None
        g["since_this_run"] = g["first_seen_run_id"] == run_id
        g["waiver_yaml"] = (f"- check_id: {g['check_id']}\n  record_key: {g['patient_key']}\n"
                            f"  reason: value confirmed with the source record\n  owner: <your name>\n"
                            f"  expires: {expires}")
    by_variable: dict[str, set] = defaultdict(set)
    for r in rows:
        if r["status"] == "set_aside":
            by_variable[r["variable"]].add(r["patient_key"])
    return {
        "rows": list(grouped.values()),
        "active": sum(r["status"] == "set_aside" for r in rows),
        "waived": sum(r["status"] == "waived" for r in rows),
        "patients": len({r["patient_key"] for r in rows if r["status"] == "set_aside"}),
        "by_variable": sorted(((v, len(k)) for v, k in by_variable.items()), key=lambda x: (-x[1], x[0])),
        "waivers_file": waivers_file,
    }


def _impact(con: duckdb.DuckDBPyConnection) -> dict:
    out: dict[str, Any] = {"attrition": None, "attrition_missing": None, "risks": None, "risks_missing": None}
    columns = _table_columns(con, "marts", "cohort_attrition")
    if columns:
        wanted = [c for c in ("step_order", "step", "rule", "n_remaining", "n_excluded", "reason") if c in columns]
        order = "order by step_order" if "step_order" in columns else ""
        steps = _rows(con, f"select {', '.join(wanted)} from marts.cohort_attrition {order}")
        top = max([int(s.get("n_remaining") or 0) for s in steps] + [1])
        for s in steps:
            s["bar"] = round(100.0 * int(s.get("n_remaining") or 0) / top, 1)
        out["attrition"] = steps
    else:
        out["attrition_missing"] = "marts.cohort_attrition"
    columns = set(_table_columns(con, "marts", "cohort_idds"))
    if not columns:
        out["risks_missing"] = "marts.cohort_idds"
        return out
    key = "patient_key" if "patient_key" in columns else None
    rules = [
        ("death_before_implant", "death before the implant", "death_date < implant_date",
         {"death_date", "implant_date"}),
        ("followup_after_cutoff", "follow-up or death after the data cut-off",
         "(last_contact_date > data_cutoff_date or death_date > data_cutoff_date)",
         {"last_contact_date", "death_date", "data_cutoff_date"}),
        ("negative_os_days", "negative overall-survival time (os_days < 0)", "os_days < 0", {"os_days"}),
    ]
    selects = ["count(*) as n_cohort"]
    for name, _, condition, needs in rules:
        if needs <= columns:
            selects.append(f"count(*) filter (where {condition}) as {name}")
            if key:
                selects.append(f"list_slice(list({key} order by {key}) filter (where {condition}), "
                               f"1, {SAMPLE_ROWS}) as {name}_keys")
    found = _rows(con, f"select {', '.join(selects)} from marts.cohort_idds")[0]
    risks = []
    for name, label, condition, needs in rules:
        missing = sorted(needs - columns)
        risks.append({"name": name, "label": label, "condition": condition,
                      "n": found.get(name), "patient_keys": found.get(f"{name}_keys") or [],
                      "missing": missing,
                      "sql": (f"select {key + ', ' if key else ''}{', '.join(sorted(needs))} "
                              f"from marts.cohort_idds where {condition};") if not missing else None})
    out["risks"], out["n_cohort"] = risks, found["n_cohort"]
    return out


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["count"] = count
    env.filters["label"] = _status_label
    env.filters["when"] = lambda v: "–" if v is None else (
        v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v))
    return env


def build_validation_report(con: duckdb.DuckDBPyConnection, run_id: str, reports_dir: Path) -> Path:
    """Write ``<reports>/<run_id>/validation.html`` and copy it to ``<reports>/latest/``."""
    started = datetime.now()
    reports_dir = Path(reports_dir)
    run = _run(con, run_id)
    runs, previous = _history(con, run)
    catalogue_empty = _catalogue_size(con) == 0
    results = _results(con, run_id)
    by_run = _per_check_by_run(con, runs)  # the previous run is runs[-2]
    _trends(results, by_run, runs)
    _samples(con, run_id, results)
    for r in results:
        r["blocking"] = _is_blocking(r, catalogue_empty)
        r["search"] = " ".join(str(x) for x in (
            r["check_id"], r["engine"], r["status"], r["severity"], r["kahn_category"],
            r["kahn_subcategory"], r["description"] or "", r["detail"] or "") if x).lower()
    blocking = [r for r in results if r["blocking"]]
    verdict = run.get("verdict")
    derived = verdict not in ("allowed", "blocked")
    if derived:
        verdict = "blocked" if blocking else "allowed"
    filters = {
        "status": [s for s in STATUSES if any(r["status"] == s for r in results)]
        + sorted({r["status"] for r in results} - set(STATUSES)),
        "severity": [s for s in SEVERITIES if any(r["severity"] == s for r in results)]
        + sorted({r["severity"] for r in results} - set(SEVERITIES)),
        "engine": sorted({r["engine"] for r in results}),
        "category": sorted({r["kahn_category"] for r in results}),
        "subcategory": sorted({r["kahn_subcategory"] for r in results if r["kahn_subcategory"]}),
    }
    context = {
        "run": run,
        "runs": runs,
        "previous": previous,
        "verdict": verdict,
        "verdict_derived": derived,
        "blocking": blocking,
        "blocking_rule": ("catalogue severity 'blocking' (checks without a catalogue row: a failing "
                          + "/".join(BLOCKING_ENGINES) + " check)") if not catalogue_empty else
                         ("the check catalogue is empty, so any failing " + "/".join(BLOCKING_ENGINES)
                          + " check blocks"),
        "catalogue_empty": catalogue_empty,
        "provenance": _provenance(con, run_id),
        "reconciliation": _reconciliation(con, run_id),
        "kahn": _kahn(results),
        "changes": _changes(results, by_run, run_id, previous),
        "results": results,
        "statuses": STATUSES,
        "status_counts": {s: sum(r["status"] == s for r in results) for s in filters["status"]},
        "filters": filters,
        "drills": [r for r in results if r["drill"]],
        "waivers": _waivers(con, run, results),
        "set_aside": _set_aside(con, run_id, waivers_path()),
        "impact": _impact(con),
        "data_docs": DATA_DOCS,
        "sample_rows": SAMPLE_ROWS,
        "generated": started,
    }
    template = _environment().from_string(
        resources.files("idds.report").joinpath("templates/validation.html").read_text(encoding="utf-8"))
    html = template.render(**context)
    out_dir = reports_dir / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "validation.html"
    path.write_text(html, encoding="utf-8")
    latest = reports_dir / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, latest / "validation.html")
    return path
