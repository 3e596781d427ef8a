"""Release by record: a data defect sets aside the values it touches, never the registry.

A blocking check whose catalogue entry has ``sets_aside`` (expectations/catalogue.yml, the
one home of the map) does not stop the run. Each of its violations that reaches the cohort
sets aside, for that patient, exactly the listed columns of ``marts.cohort_idds`` (they
hold NULL, and the statistics use the remaining values), or the whole patient
(``patient``: the patient leaves the analysis sets through the attrition step
``set_aside``). A record quarantined at ingest by a contract check sets aside the cohort
columns its file feeds (``contract_sets_aside``) for its patient, until a later delivery
of the same record loads.

A waiver for (check id, patient_key) - or for the check id alone - means the steward
confirmed the value: it is used again and listed as waived; once the waiver expires the
value is set aside again.

Every set-aside value is recorded in ``dq.dq_set_aside`` (append-only by run, waived ones
included) and the active ones in ``marts.cohort_set_aside``. Only run-level reasons block
the run (:func:`run_level_checks`).
"""

from __future__ import annotations

from datetime import date

import duckdb

from expectations.contracts import CONTRACTS, key_column
from idds.checks import ReleasePolicy, catalogue, describe, waiver_state
from idds.dq import ensure_dq_schema, record_check_result
from idds.warehouse import scalar, table_exists

COHORT = "marts.cohort_idds"
BUILT = "intermediate.cohort_as_built"
PATIENT = "patient"

MART_SQL = """
create or replace table marts.cohort_set_aside as
select patient_key, variable, check_id, value, first_seen_run_id, run_id, followup_set
from dq.dq_set_aside where run_id = ? and status = 'set_aside'
order by variable, check_id, patient_key
"""


def sets_aside(check_id: str, engine: str | None = None) -> list[str] | str | None:
    """What a violation of ``check_id`` in the cohort sets aside: columns, 'patient' or None."""
    return describe(check_id, engine).get("sets_aside")


def contract_sets_aside() -> dict[str, list[str] | str]:
    """File stem -> the cohort columns a quarantined record of that file sets aside."""
    return catalogue().get("contract_sets_aside") or {}


# ------------------------------------------------------------------------------------------
# which patients each check touches
# ------------------------------------------------------------------------------------------


def _reaching_cohort(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Patient keys of the cohort among the failing rows of a check's drill-down SQL: rows
    flagged ``in_cohort`` when the SQL says so; else rows of a cohort implant; else rows of
    a cohort patient."""
    con.execute(f"create or replace temp table _set_aside_failing as select * from ({sql})")
    try:
        names = {c[0] for c in con.execute("select * from _set_aside_failing limit 0").description}
        if "patient_key" not in names:
            return []
        if "in_cohort" in names:
            where = "coalesce(f.in_cohort, false) and f.patient_key in (select patient_key from marts.cohort_idds)"
        elif "implant_id" in names:
            where = "f.implant_id in (select implant_id from marts.cohort_idds)"
        else:
            where = "f.patient_key in (select patient_key from marts.cohort_idds)"
        return [r[0] for r in con.execute(
            f"select distinct f.patient_key from _set_aside_failing f where {where} order by 1").fetchall()]
    finally:
        con.execute("drop table if exists _set_aside_failing")


def _from_check_results(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[str, str, str]]:
    """(patient_key, check_id, source) for every failing set-aside check of the run."""
    out = []
    rows = con.execute(
        "select check_id, engine, drilldown_sql from dq.dq_check_result "
        "where run_id = ? and rows_failed > 0 and engine in ('dbt', 'gx') and drilldown_sql is not null "
        "order by check_id", [run_id]).fetchall()
    for check_id, engine, sql in rows:
        if not sets_aside(check_id, engine):
            continue
        for key in _reaching_cohort(con, sql):
            out.append((key, check_id, f"{engine} check over the built models"))
    return out


def _unresolved_quarantine_sql(stem: str) -> str:
    """Quarantined records of ``stem`` (any run) of a cohort patient that no later delivery
    loaded again (the caller checks that ``raw.<stem>`` exists)."""
    key = key_column(stem)
    return f"""
        select distinct idds_patient_key(q.patient_id) as patient_key, q.check_ids[1] as check_id,
               q.delivery_id || '/' || q.source_file || ':' || q.line_number as source
        from dq.quarantine q
        where q.file_stem = '{stem}' and q.patient_id is not null and len(q.check_ids) > 0
          and idds_patient_key(q.patient_id) in (select patient_key from marts.cohort_idds)
          and not exists (select 1 from raw.{stem} r
                          where r.{key} = coalesce(q.record_key, q.patient_id)
                            and r._delivery_id > q.delivery_id)
    """


def _from_quarantine(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(patient_key, check_id, source, file stem) for every unresolved quarantined record
    of a cohort patient."""
    out = []
    for stem in contract_sets_aside():
        if stem not in CONTRACTS or not table_exists(con, "raw", stem):
            continue
        out += [(*row, stem) for row in con.execute(
            _unresolved_quarantine_sql(stem) + " order by 1, 2, 3").fetchall()]
    return out


# ------------------------------------------------------------------------------------------
# the set-aside rows of a run
# ------------------------------------------------------------------------------------------


def _waiver_for(waivers: list[dict], check_id: str, patient_key: str, today: date) -> dict | None:
    """The steward's waiver covering (check, patient), expired ones included (they restore
    nothing: the caller reads the state)."""
    matching = [w for w in waivers if w["check_id"] == check_id
                and w.get("record_key") in (None, "", patient_key)]
    if not matching:
        return None
    # a live waiver wins over an expired one
    return sorted(matching, key=lambda w: waiver_state(w, today) == "expired")[0]


def _variables(check_id: str, engine: str | None, stem: str | None = None) -> list[str]:
    target = contract_sets_aside().get(stem) if stem else sets_aside(check_id, engine)
    if not target:
        return []
    return [PATIENT] if target == PATIENT else list(target)


def _cohort_values(con: duckdb.DuckDBPyConnection, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """The cohort's value (as text) of each (patient_key, variable) before it is set aside."""
    values: dict[tuple[str, str], str | None] = {}
    by_variable: dict[str, list[str]] = {}
    for key, variable in pairs:
        if variable != PATIENT:
            by_variable.setdefault(variable, []).append(key)
    columns = {c[0] for c in con.execute(f"select * from {COHORT} limit 0").description}
    for variable, keys in by_variable.items():
        if variable not in columns:
            raise ValueError(f"expectations/catalogue.yml sets aside '{variable}', which is no column of {COHORT}")
        for key, value in con.execute(
                f'select patient_key, cast("{variable}" as varchar) from {COHORT} '
                "where patient_key in (select unnest(?))", [keys]).fetchall():
            values[(key, variable)] = value
    return values


def collect_set_asides(con: duckdb.DuckDBPyConnection, run_id: str, waivers: list[dict],
                       today: date | None = None) -> int:
    """Write this run's rows of ``dq.dq_set_aside`` (replacing any of an earlier attempt);
    return how many values are set aside (not waived)."""
    today = today or date.today()
    ensure_dq_schema(con)
    con.execute("delete from dq.dq_set_aside where run_id = ?", [run_id])
    if not table_exists(con, "marts", "cohort_idds"):
        return 0
    engines = dict(con.execute(
        "select check_id, any_value(engine) from dq.dq_check_result where run_id = ? group by 1",
        [run_id]).fetchall())
    found: dict[tuple[str, str, str], str] = {}  # (patient, variable, check) -> source
    for key, check_id, source in _from_check_results(con, run_id):
        for variable in _variables(check_id, engines.get(check_id)):
            found.setdefault((key, variable, check_id), source)
    for key, check_id, source, stem in _from_quarantine(con):
        for variable in _variables(check_id, "pandera", stem):
            found.setdefault((key, variable, check_id), "quarantined record " + source)
    values = _cohort_values(con, {(k, v) for k, v, _ in found})
    followed = {r[0] for r in con.execute(
        f"select patient_key from {COHORT} where followup_status = 'followed'").fetchall()}
    first_seen = {(k, v, c): r for k, v, c, r in con.execute(
        "select patient_key, variable, check_id, min(first_seen_run_id) from dq.dq_set_aside "
        "where run_id <> ? group by all", [run_id]).fetchall()}
    rows = []
    for (key, variable, check_id), source in sorted(found.items()):
        waiver = _waiver_for(waivers, check_id, key, today)
        waived = waiver is not None and waiver_state(waiver, today) != "expired"
        rows.append([run_id, key, variable, check_id, values.get((key, variable)),
                     "waived" if waived else "set_aside",
                     first_seen.get((key, variable, check_id), run_id), source,
                     waiver["owner"] if waiver else None, waiver["expires"] if waiver else None,
                     key in followed])
    if rows:
        con.executemany("insert into dq.dq_set_aside values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return sum(r[5] == "set_aside" for r in rows)


# ------------------------------------------------------------------------------------------
# applying them
# ------------------------------------------------------------------------------------------


def apply_set_asides(con: duckdb.DuckDBPyConnection, run_id: str, policy: ReleasePolicy) -> dict:
    """Apply the run's set-asides to the cohort, then record the run-level checks on the
    released cohort; returns the counts (values and patients set aside, cohort size)."""
    applied = _apply(con, run_id)
    return {**applied, **run_level_checks(con, run_id, policy)}


def _apply(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Set the run's active set-aside values to NULL in ``marts.cohort_idds``; remove the
    patients set aside as a whole (attrition step ``set_aside`` in ``marts.cohort_attrition``,
    ``dim_patients.exclusion_step``); write ``marts.cohort_set_aside``. Idempotent for a run."""
    # the cohort as built, for the statistics' comparison (its only writer; never published)
    con.execute(f"create or replace table {BUILT} as select * from {COHORT} order by implant_id")
    active = "select patient_key from dq.dq_set_aside where run_id = ? and status = 'set_aside' and variable = ?"
    variables = [r[0] for r in con.execute(
        "select distinct variable from dq.dq_set_aside where run_id = ? and status = 'set_aside' "
        "and variable <> ? order by 1", [run_id, PATIENT]).fetchall()]
    for variable in variables:
        con.execute(f'update {COHORT} set "{variable}" = null where patient_key in ({active})',
                    [run_id, variable])
    removed = con.execute(
        f"select patient_key, string_agg(distinct check_id, ', ' order by check_id) from dq.dq_set_aside "
        f"where run_id = ? and status = 'set_aside' and variable = ? "
        f"and patient_key in (select patient_key from {COHORT}) group by 1 order by 1",
        [run_id, PATIENT]).fetchall()
    if removed:
        con.execute(f"delete from {COHORT} where patient_key in (select unnest(?))", [[k for k, _ in removed]])
        if table_exists(con, "marts", "dim_patients"):
            for key, checks in removed:
                con.execute("update marts.dim_patients set is_included = false, exclusion_step = 'set_aside', "
                            "exclusion_reason = ? where patient_key = ?", [f"set aside by {checks}", key])
    _attrition_step(con, removed)
    con.execute(MART_SQL, [run_id])
    n_values = scalar(con, "select count(*) from marts.cohort_set_aside")
    return {"values": int(n_values), "patients_removed": len(removed)}


def _attrition_step(con: duckdb.DuckDBPyConnection, removed: list[tuple[str, str]]) -> None:
    """The attrition flow ends with the patients set aside as a whole (0 when none)."""
    if not table_exists(con, "marts", "cohort_attrition"):
        return
    con.execute("delete from marts.cohort_attrition where step = 'set_aside'")
    last_order, remaining = con.execute(
        "select step_order, n_remaining from marts.cohort_attrition order by step_order desc limit 1").fetchall()[0]
    counts: dict[str, int] = {}
    for _, checks in removed:
        for check_id in checks.split(", "):
            counts[check_id] = counts.get(check_id, 0) + 1
    reason = ", ".join(f"{c} ({n})" for c, n in sorted(counts.items())) or None
    con.execute("insert into marts.cohort_attrition values (?, 'set_aside', ?, ?, ?, ?)",
                [last_order + 1, "not set aside as a whole by a data-quality rule (identity rules)",
                 remaining - len(removed), len(removed), reason])


# ------------------------------------------------------------------------------------------
# run-level reasons: the only ones that block
# ------------------------------------------------------------------------------------------


def _last_published_cohort(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str, int] | None:
    rows = con.execute(
        "select run_id, cohort_n from dq.dq_run where status = 'succeeded' and run_id <> ? "
        "and cohort_n is not null order by started_at desc, run_id desc limit 1", [run_id]).fetchall()
    return rows[0] if rows else None


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f} %" if d else "n/a"


def run_level_checks(con: duckdb.DuckDBPyConnection, run_id: str, policy: ReleasePolicy) -> dict:
    """Record the run-level checks on the released cohort (after the set-asides):
    ``pipeline.cohort.empty``, ``pipeline.cohort.shrunk`` (against the last *published*
    run) and ``pipeline.set_aside.primary``; each result's detail is a plain sentence."""
    n = int(scalar(con, f"select count(*) from {COHORT}") or 0) if table_exists(con, "marts", "cohort_idds") else 0
    removed = int(scalar(con, "select count(distinct patient_key) from dq.dq_set_aside where run_id = ? "
                              "and status = 'set_aside' and variable = ?", [run_id, PATIENT]) or 0)
    built = n + removed
    record_check_result(
        con, run_id, "pipeline.cohort.empty", "pipeline", int(n == 0), 1,
        detail=(f"The cohort is empty: {built} patients were built and {removed} set aside as a whole; "
                "nothing would be analysed." if n == 0 else f"The cohort holds {n} patients."))
    last = _last_published_cohort(con, run_id)
    if last is None:
        record_check_result(con, run_id, "pipeline.cohort.shrunk", "pipeline", 0, 0,
                            detail="No published run to compare with.")
    else:
        last_run, last_n = last
        lost = max(last_n - n, 0)
        shrunk = lost >= policy.share_min_rows and last_n and lost / last_n > policy.max_cohort_shrink_share
        record_check_result(
            con, run_id, "pipeline.cohort.shrunk", "pipeline", lost if shrunk else 0, int(last_n),
            detail=(f"The cohort shrank from {last_n} patients (published run {last_run}) to {n}: "
                    f"{lost} fewer ({_pct(lost, last_n)}), more than the "
                    f"{policy.max_cohort_shrink_share:.0%} allowed." if shrunk else
                    f"The cohort holds {n} patients; the last published run had {last_n}."))
    worst = (None, 0)
    for variable in policy.primary_variables:
        k = int(scalar(con, "select count(distinct patient_key) from dq.dq_set_aside where run_id = ? "
                            "and status = 'set_aside' and variable in (?, ?)", [run_id, variable, PATIENT]) or 0)
        if k > worst[1]:
            worst = (variable, k)
    variable, k = worst
    over = built and k >= policy.share_min_rows and k / built > policy.max_primary_set_aside_share
    record_check_result(
        con, run_id, "pipeline.set_aside.primary", "pipeline", k if over else 0, built,
        detail=(f"The primary variable {variable} is set aside for {k} of {built} patients "
                f"({_pct(k, built)}), more than the {policy.max_primary_set_aside_share:.0%} allowed: "
                "the run's results would not be trustworthy." if over else
                f"Primary variables set aside for at most {k} of {built} patients."))
    n_values, n_patients = con.execute(
        "select count(*), count(distinct patient_key) from dq.dq_set_aside where run_id = ? "
        "and status = 'set_aside'", [run_id]).fetchall()[0]
    con.execute("update dq.dq_run set cohort_n = ?, values_set_aside = ? where run_id = ?", [n, n_values, run_id])
    return {"cohort_n": n, "values_set_aside": int(n_values), "patients_with_set_asides": int(n_patients)}



def record_ingest_checks(con: duckdb.DuckDBPyConnection, run_id: str, ingested: list[dict]) -> None:
    """``pipeline.delivery.refused`` and ``pipeline.reconciliation.identity`` for the
    deliveries this run took in (or tried to), each with a plain sentence."""
    refused = [r for r in ingested if r["status"] == "refused"]
    broken = [r for r in ingested if r["status"] == "unreconciled"]
    con.execute("delete from dq.dq_check_result where run_id = ? and check_id in "
                "('pipeline.delivery.refused', 'pipeline.reconciliation.identity')", [run_id])

    def waiting(r: dict) -> str:
        later = r.get("waiting") or []
        return f" Later deliveries wait with it: {', '.join(later)}." if later else ""

    record_check_result(
        con, run_id, "pipeline.delivery.refused", "pipeline", len(refused), len(ingested),
        detail=(f"A delivery was refused: {refused[0]['message']} Nothing of it is loaded until the hospital "
                f"redelivers it (a corrected folder of the same name).{waiting(refused[0])}" if refused else
                "Every new delivery was taken in."))
    record_check_result(
        con, run_id, "pipeline.reconciliation.identity", "pipeline", len(broken), len(ingested),
        detail=("The records of a delivery do not reconcile: " + broken[0]["message"] + " Nothing of that "
                f"delivery was loaded.{waiting(broken[0])}" if broken else
                "Every delivered record is loaded, quarantined or a duplicate."))


# the order in which causes are named: what happened first comes first
CAUSE_ORDER = ("pipeline.delivery", "pipeline.reconciliation", "pipeline.dbt", "pipeline.marts", "raw.", "dbt.",
               "gx.", "pipeline.cohort.empty", "pipeline.cohort.shrunk", "pipeline.set_aside")


def _cause_rank(check_id: str) -> int:
    return next((i for i, p in enumerate(CAUSE_ORDER) if check_id.startswith(p)), len(CAUSE_ORDER))


def cause_sentences(con: duckdb.DuckDBPyConnection, run_id: str, failing: list[str]) -> list[str]:
    """One plain sentence per blocking failure, first cause first."""
    out = []
    for check_id in sorted(failing, key=lambda c: (_cause_rank(c), c)):
        rows = con.execute(
            "select r.engine, r.detail, r.rows_failed, r.rows_tested, c.description "
            "from dq.dq_check_result r left join dq.dq_check c using (check_id) "
            "where r.run_id = ? and r.check_id = ? limit 1", [run_id, check_id]).fetchall()
        if not rows:
            out.append(f"{check_id} failed.")
            continue
        engine, detail, failed, tested, description = rows[0]
        if engine == "pipeline" and detail:
            sentence = detail.rstrip(".")
        else:
            counted = f"{failed} of {tested}" if tested else f"{failed}"
            sentence = f"{(description or check_id).rstrip('.')}: violated by {counted} rows"
        out.append(f"{sentence} ({check_id}).")
    return out


def verdict_message(con: duckdb.DuckDBPyConnection, run_id: str, failing: list[str], released: dict) -> str:
    """The verdict in one sentence (and the causes of a block, first cause first)."""
    if failing:
        causes = cause_sentences(con, run_id, failing)
        published = scalar(con, "select count(*) from dq.dq_run where status = 'succeeded' and run_id <> ?",
                           [run_id])
        keep = ("The analyst file keeps the last published run." if published
                else "Nothing was published: no earlier run was published either.")
        return f"Blocked: {causes[0]}" + (" Also: " + " ".join(causes[1:]) if causes[1:] else "") + " " + keep
    values, patients = released.get("values_set_aside", 0), released.get("patients_with_set_asides", 0)
    if not values:
        return f"Published: {released.get('cohort_n', 0)} patients; no value set aside."
    return (f"Published: {released.get('cohort_n', 0)} patients; {values} value{'s' if values != 1 else ''} "
            f"of {patients} patient{'s' if patients != 1 else ''} set aside by data-quality rules"
            + (f" ({released['patients_removed']} patients set aside as a whole)"
               if released.get("patients_removed") else "")
            + "; the statistics use the remaining values.")
