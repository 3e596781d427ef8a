"""How long the steward's validation report takes to build with a long history.

Creates a DuckDB warehouse with a check catalogue of 500 checks and 100 runs of history
(random statuses, failing rows, quarantined rows, waivers, reconciliation, marts), then
times ``build_validation_report`` for the latest run and prints one table. Exits 1 when
the build takes longer than the limit (10 s), so CI can run it.

    /work/main/.venv/bin/python benchmarks/report_benchmark.py [--checks 500] [--runs 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from idds.dq import ensure_dq_schema
from idds.report.validation import build_validation_report
from idds.warehouse import connect

KEY = "benchmark-key-not-for-production"
LIMIT_SECONDS = 10.0
FILES = ("patients.csv", "admissions.csv", "diagnoses.csv", "measurements.csv.gz", "medication_orders.csv.gz",
         "procedures.csv", "idds_implants.csv", "treatment_history.csv", "itt_trials.csv", "pump_programs.csv",
         "adverse_events.csv", "followups.csv")


def fill(con, checks: int, runs: int, seed: float = 0.42) -> dict[str, int]:
    """The synthetic history; returns row counts per table."""
    ensure_dq_schema(con)
    con.execute(f"select setseed({seed})")
    con.execute(f"""
        insert into dq.dq_check (check_id, engine, kahn_category, kahn_subcategory, severity, warn_pct,
                                 fail_pct, warn_count, fail_count, description, rationale, what_to_do)
        select printf('bench.%s.check_%04d', ['raw', 'dbt', 'gx', 'pipeline'][i % 4 + 1], i),
               ['pandera', 'dbt', 'gx', 'pipeline'][i % 4 + 1],
               ['conformance', 'conformance', 'conformance', 'completeness', 'plausibility', 'plausibility',
                'plausibility'][i % 7 + 1],
               ['value', 'relational', 'computational', null, 'uniqueness', 'atemporal', 'temporal'][i % 7 + 1],
               ['blocking', 'warning', 'info'][i % 3 + 1],
               case when i % 5 = 0 then 1.0 end, case when i % 5 = 0 then 5.0 end,
               case when i % 6 = 0 then 10 end, case when i % 6 = 0 then 100 end,
               'Benchmark check number ' || i || ': values are plausible.',
               'Because the analysis needs it.', 'Correct the source and re-deliver.'
        from range({checks}) t(i)
    """)
    con.execute(f"""
        insert into dq.dq_run (run_id, flow_run_id, started_at, ended_at, status, verdict, message,
                               code_version, landing, package_versions)
        select printf('bench-run-%03d', r), 'flow-' || r, timestamp '2024-01-01 02:00:00' + to_days(r),
               timestamp '2024-01-01 02:10:00' + to_days(r), 'succeeded',
               case when random() < 0.3 then 'blocked' else 'allowed' end, null, '0.1.0', '/data/landing',
               '{{"duckdb": "2.0.1", "dbt-core": "1.11.2"}}'
        from range({runs}) t(r)
    """)
    con.execute("""
        create temp table bench_result as
        select run_id, check_id, engine, u,
               case when u < 0.70 then 'pass' when u < 0.78 then 'pass_with_violations' when u < 0.86 then 'warn'
                    when u < 0.95 then 'fail' when u < 0.97 then 'error' when u < 0.985 then 'not_applicable'
                    else 'waived' end as status,
               (1000 + floor(random() * 1200000))::bigint as rows_tested
        from (select r.run_id, c.check_id, c.engine, random() as u from dq.dq_run r cross join dq.dq_check c)
    """)
    con.execute("""
        insert into dq.dq_check_result (run_id, check_id, engine, status, rows_failed, rows_tested, pct_failed,
                                        patients_affected, drilldown_sql, execution_ms, detail)
        select run_id, check_id, engine, status, n_failed, case when engine = 'dbt' then null else rows_tested end,
               100.0 * n_failed / rows_tested, case when n_failed > 0 then least(n_failed, 96) end,
               'select * from marts.cohort_idds where check_id = ''' || check_id || '''',
               random() * 500, 'benchmark result'
        from (select *, case when status in ('pass', 'not_applicable') then 0
                             else 1 + floor(random() * 40)::bigint end as n_failed from bench_result)
    """)
    con.execute("""
        insert into dq.dq_failed_row (run_id, check_id, table_name, patient_key, record_key, offending_value)
        select run_id, check_id, 'marts.cohort_idds', 'pk_' || substr(md5(run_id || check_id || k), 1, 20),
               'REC' || k, 'value ' || k
        from dq.dq_check_result, range(30) t(k)
        where rows_failed > k
    """)
    con.execute("""
        insert into dq.dq_waiver (run_id, check_id, record_key, reason, owner, created, expires, state)
        select r.run_id, c.check_id, null, 'known issue', 'steward', date '2023-12-01',
               cast(r.started_at as date) + cast(floor(random() * 60) - 20 as integer), 'active'
        from dq.dq_run r join dq.dq_check c on hash(c.check_id) % 17 = 0
    """)
    con.execute("""
        insert into dq.dq_delivery (run_id, delivery_id, status, has_manifest, n_files, message)
        select run_id, strftime(started_at, '%Y-%m-%d'), 'loaded', true, 12, null
        from dq.dq_run
    """)
    files = ", ".join(f"'{f}'" for f in FILES)
    con.execute(f"""
        create temp table bench_file as
        select r.run_id, strftime(r.started_at, '%Y-%m-%d') as delivery_id, f as source_file,
               split_part(f, '.', 1) as file_stem, sha256(r.run_id || f) as sha256,
               (1000 + floor(random() * 50000))::bigint as rows_read,
               floor(random() * 30)::bigint as rows_quarantined, floor(random() * 5)::bigint as rows_duplicate
        from dq.dq_run r, unnest([{files}]) t(f)
    """)
    con.execute("""
        insert into dq.ingest_file (run_id, delivery_id, source_file, file_stem, sha256, encoding, status,
                                    message, loaded_at)
        select run_id, delivery_id, source_file, file_stem, sha256, 'utf-8', 'loaded',
               null, current_timestamp from bench_file
    """)
    con.execute("""
        insert into dq.dq_reconciliation (run_id, delivery_id, source_file, file_stem, rows_read, rows_loaded,
                                          rows_quarantined, rows_duplicate, rows_superseded, status, message)
        select run_id, delivery_id, source_file, file_stem, rows_read,
               rows_read - rows_quarantined - rows_duplicate, rows_quarantined, rows_duplicate, 0, 'loaded', null
        from bench_file
    """)
    con.execute("""
        create or replace table raw.patients as
        select lpad(cast(i as varchar), 10, '0') as patient_id, 'Patient ' || i as name,
               '138' || lpad(cast(i as varchar), 8, '0') as phone, '1101051960' || lpad(cast(i as varchar), 8, '0') as id_number
        from range(1, 20001) t(i)
    """)
    con.execute(f"""
        insert into dq.quarantine (run_id, delivery_id, source_file, file_stem, line_number, record_key, patient_id,
                                   raw_row, check_ids, reasons)
        select f.run_id, f.delivery_id, f.source_file, f.file_stem, 2 + k, 'REC' || k, lpad(cast(1 + k as varchar), 10, '0'),
               to_json(struct_pack(patient_id := lpad(cast(1 + k as varchar), 10, '0'), name := 'Patient ' || (1 + k),
                                   phone := '138' || lpad(cast(1 + k as varchar), 8, '0'), value := 'x' || k)),
               [printf('bench.raw.check_%04d', (hash(f.source_file) % greatest({checks} // 4, 1)) * 4)],
               f.delivery_id || '/' || f.source_file || ' line ' || (2 + k) || ': field value is not a number.'
        from bench_file f, range(30) t(k) where k < f.rows_quarantined
    """)
    con.execute("""
        create or replace table marts.cohort_attrition as select * from (values
            (0, 'extract', 'every patient', 20000, 0, null), (1, 'no_implant', 'has an implant', 1200, 18800, 'no_implant'),
            (2, 'missing_data', 'baseline complete', 1000, 200, 'missing_data')) t(step_order, step, rule, n_remaining,
            n_excluded, reason)
    """)
    con.execute("""
        create or replace table marts.cohort_idds as
        select 'pk_' || substr(md5(cast(i as varchar)), 1, 20) as patient_key, date '2021-01-01' + i % 900 as implant_date,
               case when i % 3 = 0 then date '2021-01-01' + i % 900 + (i % 400) - 5 end as death_date,
               date '2021-01-01' + i % 900 + i % 500 as last_contact_date, date '2024-03-20' as data_cutoff_date,
               (i % 500) - 3 as os_days, cast(i % 3 = 0 as integer) as os_event
        from (select cast(i as integer) as i from range(1000) t(i))
    """)
    return {t: con.execute(f"select count(*) from dq.{t}").fetchall()[0][0]
            for t in ("dq_check", "dq_run", "dq_check_result", "dq_failed_row", "dq_waiver", "quarantine")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--limit", type=float, default=LIMIT_SECONDS, help="seconds allowed (default 10)")
    parser.add_argument("--keep", type=Path, help="write the warehouse and report here and keep them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idds-report-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        warehouse = root / "bench.duckdb"
        if warehouse.exists():
            warehouse.unlink()
        with connect(warehouse, KEY) as con:
            started = time.perf_counter()
            counts = fill(con, args.checks, args.runs)
            fill_seconds = time.perf_counter() - started
            latest = con.execute("select run_id from dq.dq_run order by started_at desc limit 1").fetchall()[0][0]
            started = time.perf_counter()
            path = build_validation_report(con, latest, root / "reports")
            seconds = time.perf_counter() - started
        size = path.stat().st_size
        rows = [
            ("checks", f"{counts['dq_check']:,}"), ("runs", f"{counts['dq_run']:,}"),
            ("result rows (all runs)", f"{counts['dq_check_result']:,}"),
            ("failed rows (all runs)", f"{counts['dq_failed_row']:,}"),
            ("quarantined rows (all runs)", f"{counts['quarantine']:,}"), ("waivers", f"{counts['dq_waiver']:,}"),
            ("history fill (s)", f"{fill_seconds:.2f}"),
            ("report build (s)", f"{seconds:.2f}"), ("limit (s)", f"{args.limit:.0f}"),
            ("report size", f"{size / 1_048_576:.2f} MB"),
        ]
        width = max(len(k) for k, _ in rows)
        print(f"{'measure':<{width}}  value")
        print(f"{'-' * width}  {'-' * 12}")
        for k, v in rows:
            print(f"{k:<{width}}  {v:>12}")
        if args.keep:
            print(f"report: {path}")
        if seconds > args.limit:
            print(f"FAIL: the report took {seconds:.2f} s, over the {args.limit:.0f} s limit.", file=sys.stderr)
            return 1
        print(f"OK: {seconds:.2f} s for {counts['dq_check']:,} checks and {counts['dq_run']:,} runs of history.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
