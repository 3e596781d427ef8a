"""Publish: copy the marts and dq tables into a new analyst file and rename it into place.

Analysts keep reading the previous file while the new one is written; the rename is
atomic, so a reader sees either the old snapshot or the new one, never a mix. Direct
identifiers and raw MRNs never reach the analyst file: quarantined raw rows are masked.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from expectations.contracts import CONTRACTS, free_text_columns, key_column
from idds.ingest.load import fault_point
from idds.warehouse import scalar

DQ_TABLES = ("dq_run", "dq_delivery", "dq_reconciliation", "dq_check", "dq_check_result", "schema_drift",
             "dq_set_aside")


def _phi_names() -> list[str]:
    names = set()
    for schema in CONTRACTS.values():
        names.update(c for c, col in schema.columns.items() if col.metadata.get("phi"))
    return sorted(names)


def masked_quarantine_sql(source: str = "dq.quarantine") -> str:
    """The quarantine with identifier fields replaced, narrative text truncated to 20
    characters, record keys that are identifiers dropped, and the MRN swapped for
    patient_key."""
    phi = "|".join(_phi_names())
    free = "|".join(free_text_columns())
    phi_keyed = ", ".join(f"'{f}'" for f in CONTRACTS if key_column(f) in _phi_names())
    json_string = r'(?:[^"\\]|\\.)'
    return f"""
        select run_id, delivery_id, source_file, file_stem, line_number,
               case when file_stem in ({phi_keyed}) then null else record_key end as record_key,
               idds_patient_key(patient_id) as patient_key,
               case when json_valid(raw_row)
                    then regexp_replace(
                        regexp_replace(raw_row, '"({phi})":"{json_string}*"', '"\\1":"***"', 'g'),
                        '"({free})":"({json_string}{{0,20}}){json_string}+"', '"\\1":"\\2…"', 'g')
                    else '(malformed record withheld: ' || length(raw_row) || ' characters)'
               end as raw_row,
               check_ids, reasons
        from {source}
    """


def publish(con: duckdb.DuckDBPyConnection, target: Path) -> dict[str, int]:
    """Write every marts table and the dq tables to ``target`` atomically; return row counts."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    counts: dict[str, int] = {}
    old_umask = os.umask(0o022)
    try:
        con.execute(f"attach '{tmp}' as publish_tmp")
    finally:
        os.umask(old_umask)
    try:
        con.execute("create schema publish_tmp.marts; create schema publish_tmp.dq")
        marts = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "and table_catalog = current_database() order by table_name").fetchall()]
        for table in marts:
            con.execute(f"create table publish_tmp.marts.{table} as select * from marts.{table}")
            counts[f"marts.{table}"] = scalar(con, f"select count(*) from publish_tmp.marts.{table}")
        for table in DQ_TABLES:
            con.execute(f"create table publish_tmp.dq.{table} as select * from dq.{table}")
            counts[f"dq.{table}"] = scalar(con, f"select count(*) from publish_tmp.dq.{table}")
        con.execute(f"create table publish_tmp.dq.quarantine as {masked_quarantine_sql()}")
        counts["dq.quarantine"] = scalar(con, "select count(*) from publish_tmp.dq.quarantine")
        fault_point("mid-publish")
    finally:
        con.execute("detach publish_tmp")
    os.replace(tmp, target)
    return counts
