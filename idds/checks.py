"""The check catalogue and the settling of results: thresholds, severities, waivers, verdict.

Every engine appends raw results to ``dq.dq_check_result`` (violations / rows tested and
the drill-down SQL); this module gives each result its final status from the catalogue
(``expectations/catalogue.yml``) and the steward's waivers, keeps ``dq.dq_check`` in step
with the catalogue, and decides whether the run may build and publish the cohort.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import yaml

from idds.settings import env_override

EXPIRING_DAYS = 14
SETTLED = ("error", "not_applicable")
WAIVERS_ENV = "IDDS_WAIVERS"


@cache
def catalogue() -> dict:
    text = resources.files("expectations").joinpath("catalogue.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class ReleasePolicy:
    """Run-level thresholds: the catalogue's ``release`` section, overridable in the
    environment (IDDS_MAX_PRIMARY_SET_ASIDE_SHARE, IDDS_MAX_COHORT_SHRINK_SHARE,
    IDDS_SHARE_MIN_ROWS)."""

    primary_variables: tuple[str, ...]
    max_primary_set_aside_share: float
    max_cohort_shrink_share: float
    share_min_rows: int


def release_policy() -> ReleasePolicy:
    cfg = catalogue()["release"]
    return ReleasePolicy(
        primary_variables=tuple(cfg["primary_variables"]),
        max_primary_set_aside_share=env_override(
            "IDDS_MAX_PRIMARY_SET_ASIDE_SHARE", float(cfg["max_primary_set_aside_share"]), float),
        max_cohort_shrink_share=env_override(
            "IDDS_MAX_COHORT_SHRINK_SHARE", float(cfg["max_cohort_shrink_share"]), float),
        share_min_rows=env_override("IDDS_SHARE_MIN_ROWS", int(cfg["share_min_rows"]), int),
    )


def describe(check_id: str, engine: str | None = None) -> dict:
    """Catalogue entry of a check: its exact entry, else the first matching pattern."""
    cat = catalogue()
    entry = cat["checks"].get(check_id)
    if entry is None:
        entry = next((p for p in cat["patterns"] if fnmatch.fnmatchcase(check_id, p["match"])), None)
    if entry is None:
        return {"engine": engine, "kahn_category": None, "kahn_subcategory": None,
                "severity": "unclassified", "description": None, "rationale": None, "what_to_do": None}
    entry = dict(entry)
    entry.pop("match", None)
    return entry


def thresholds(entry: dict) -> dict:
    """warn/fail thresholds with the severity defaults filled in."""
    severity = entry.get("severity")
    out = {k: entry.get(k) for k in ("warn_pct", "fail_pct", "warn_count", "fail_count")}
    if all(v is None for v in out.values()):
        if severity == "blocking":
            out["fail_count"] = 1
        elif severity == "warning":
            out["warn_count"] = 1
    return out


def status_for(entry: dict, failed: int, tested: int | None, in_cohort: int | None,
               share_min_rows: int = 1) -> str:
    """pass / pass_with_violations / warn / fail for a result with ``failed`` violations.

    For blocking checks that report which violations touch the analytic cohort, only those
    can make the check fail; the others can at most warn. A share threshold (``*_pct``)
    counts only from ``share_min_rows`` violations on: one broken record in a 20-record
    file is 5 % of it, and a warning, not a failure.
    """
    if not failed:
        return "pass"
    limits = thresholds(entry)
    pct = 100.0 * failed / tested if tested else None
    counted = failed if in_cohort is None else in_cohort
    counted_pct = 100.0 * counted / tested if tested else None

    def reaches(n, p, count_limit, pct_limit):
        return (count_limit is not None and n >= count_limit) or (
            pct_limit is not None and p is not None and p >= pct_limit and n >= share_min_rows)

    if counted and reaches(counted, counted_pct, limits["fail_count"], limits["fail_pct"]):
        return "fail"
    if reaches(failed, pct, limits["warn_count"], limits["warn_pct"]) or (
            in_cohort is not None and entry.get("severity") == "blocking"):
        return "warn"
    return "pass_with_violations"


def waivers_path() -> str:
    """Where the steward's waivers are read from (for the reports' what-to-do)."""
    return os.environ.get(WAIVERS_ENV) or "expectations/waivers.yml"


def load_waivers(path: Path | None = None) -> list[dict]:
    """The steward's waivers file (IDDS_WAIVERS, default expectations/waivers.yml)."""
    if path is None and os.environ.get(WAIVERS_ENV):
        path = Path(os.environ[WAIVERS_ENV])
    if path is None:
        text = resources.files("expectations").joinpath("waivers.yml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    waivers = yaml.safe_load(text) or []
    for w in waivers:
        for field in ("check_id", "reason", "owner", "expires"):
            if not w.get(field):
                raise ValueError(f"a waiver in {path or 'expectations/waivers.yml'} lacks '{field}': {w}")
    return waivers


def waiver_state(waiver: dict, today: date) -> str:
    expires = waiver["expires"] if isinstance(waiver["expires"], date) else date.fromisoformat(str(waiver["expires"]))
    if expires < today:
        return "expired"
    return "expiring" if expires <= today + timedelta(days=EXPIRING_DAYS) else "active"


def sync_catalogue(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """dq.dq_check holds every catalogued rule and every check seen in this run."""
    seen = con.execute(
        "select distinct check_id, any_value(engine) from dq.dq_check_result where run_id = ? group by check_id",
        [run_id]).fetchall()
    ids = {cid: engine for cid, engine in seen}
    for cid in catalogue()["checks"]:
        ids.setdefault(cid, None)
    rows = []
    for cid, engine in sorted(ids.items()):
        e = describe(cid, engine)
        t = thresholds(e)
        rows.append([cid, e.get("engine") or engine, e.get("kahn_category"), e.get("kahn_subcategory"),
                     e.get("severity"), t["warn_pct"], t["fail_pct"], t["warn_count"], t["fail_count"],
                     e.get("description"), e.get("rationale"), e.get("what_to_do")])
    con.execute("delete from dq.dq_check where check_id in (select unnest(?))", [list(ids)])
    con.executemany("insert into dq.dq_check values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def settle_results(con: duckdb.DuckDBPyConnection, run_id: str, waivers: list[dict],
                   today: date | None = None) -> None:
    """Give every result of the run its final status (thresholds, severity, waivers)."""
    today = today or date.today()
    sync_catalogue(con, run_id)
    con.execute("delete from dq.dq_waiver where run_id = ?", [run_id])
    live: dict[str, list[dict]] = {}
    for w in waivers:
        state = waiver_state(w, today)
        con.execute("insert into dq.dq_waiver values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, w["check_id"], w.get("record_key"), w["reason"], w["owner"],
                     w.get("created"), w["expires"], state])
        if state != "expired":
            live.setdefault(w["check_id"], []).append(w)
    min_rows = release_policy().share_min_rows
    results = con.execute(
        "select rowid, check_id, engine, status, rows_failed, rows_tested, rows_in_cohort "
        "from dq.dq_check_result where run_id = ?", [run_id]).fetchall()
    for rowid, cid, engine, status, failed, tested, in_cohort in results:
        entry = describe(cid, engine)
        if entry.get("sets_aside") and status not in SETTLED and failed:
            # violations in the cohort are set aside (or waived), never a failure of the run
            settled, patients = set_aside_status(con, run_id, cid)
            con.execute("update dq.dq_check_result set rows_in_cohort = ? where rowid = ?", [patients, rowid])
            if settled:
                con.execute("update dq.dq_check_result set status = ? where rowid = ?", [settled, rowid])
                continue
            status = status_for(entry, int(failed), tested, 0, min_rows)
        elif status not in SETTLED:
            status = status_for(entry, int(failed or 0), tested, in_cohort, min_rows)
        if status in ("warn", "fail", "pass_with_violations") and cid in live:
            keys = {w.get("record_key") for w in live[cid]}
            if None in keys:
                status = "waived"
            else:
                failing = {r[0] for r in con.execute(
                    "select distinct record_key from dq.dq_failed_row where run_id = ? and check_id = ?",
                    [run_id, cid]).fetchall()}
                if failing and failing <= keys:
                    status = "waived"
        con.execute("update dq.dq_check_result set status = ? where rowid = ?", [status, rowid])


def set_aside_status(con: duckdb.DuckDBPyConnection, run_id: str, check_id: str) -> tuple[str | None, int]:
    """('set_aside' | 'waived' | None, cohort patients touched) of a check that sets values
    aside (dq.dq_set_aside, written by idds.setaside before the results are settled)."""
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'dq' "
                         "and table_name = 'dq_set_aside'").fetchall()[0][0]
    if not exists:
        return None, 0
    active, waived = con.execute(
        "select count(distinct patient_key) filter (where status = 'set_aside'), "
        "count(distinct patient_key) filter (where status = 'waived') "
        "from dq.dq_set_aside where run_id = ? and check_id = ?", [run_id, check_id]).fetchall()[0]
    if active:
        return "set_aside", int(active + waived)
    if waived:
        return "waived", int(waived)
    return None, 0


def blocking_failures(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """Check ids of the run whose failure stops the analysis and the publish step."""
    return [r[0] for r in con.execute(
        """
        select distinct r.check_id
        from dq.dq_check_result r left join dq.dq_check c using (check_id)
        where r.run_id = ? and r.status in ('fail', 'error')
          and coalesce(c.severity, 'blocking') = 'blocking'
        order by 1
        """, [run_id]).fetchall()]


def record_failed_rows(con: duckdb.DuckDBPyConnection, run_id: str, check_id: str, table: str,
                       sql: str, limit: int = 1000) -> int | None:
    """Store up to ``limit`` failing rows of a check's drill-down SQL in dq.dq_failed_row.

    Returns how many of ALL its failing rows touch the analytic cohort when the SQL reports
    an ``in_cohort`` column, else None.
    """
    # the check's SQL runs once (it may scan the whole extract); rows and counts come from it
    con.execute(f"create or replace temp table _failing as select * from ({sql})")
    cur = con.execute(f"select * from _failing limit {int(limit)}")
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    key_col = next((n for n in names if n.endswith("_id") and n != "patient_key"), None) or next(
        (n for n in names if n in ("unique_field", "value_field")), None)
    out = []
    for row in rows:
        rec = dict(zip(names, row, strict=True))
        offending = {k: (str(v) if v is not None else None) for k, v in rec.items()
                     if k not in ("patient_key", key_col, "in_cohort")}
        out.append([run_id, check_id, table, rec.get("patient_key"),
                    None if key_col is None else str(rec.get(key_col)), json.dumps(offending, ensure_ascii=False)])
    if out:
        con.executemany("insert into dq.dq_failed_row values (?, ?, ?, ?, ?, ?)", out)
    in_cohort = None
    if "in_cohort" in names:
        in_cohort = con.execute("select count(*) filter (where in_cohort) from _failing").fetchall()[0][0]
    con.execute("drop table _failing")
    return in_cohort
