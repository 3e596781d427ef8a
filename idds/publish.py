"""Publish: copy the marts and dq tables into a new analyst file and rename it into place.

Analysts keep reading the previous file while the new one is written; the rename is
atomic, so a reader sees either the old snapshot or the new one, never a mix. Direct
identifiers and raw MRNs never reach the analyst file, whatever a delivered file looks
like: a quarantined or drifted row may hold an identifier in any column (a header-less
file, a second name column, a phone typed into ``sex``, a relative's phone in a note), so
quarantined raw rows, their reasons and the delivered headers are masked
(:func:`masked_quarantine_sql`, :func:`masked_drift_sql`) and then guarded against every
identifier the warehouse knows (:func:`guard_identifiers_sql`). The same views feed the
validation report and ``idds quarantine``.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from expectations.contracts import CONTRACTS, free_text_columns, key_column
from idds.dq import ensure_dq_schema
from idds.ingest.load import fault_point
from idds.warehouse import IDENTIFIER_MASK, scalar

DQ_TABLES = ("dq_run", "dq_delivery", "dq_reconciliation", "dq_check", "dq_check_result", "dq_set_aside")
MASKED_DQ_TABLES = ("quarantine", "schema_drift")
# a token of a shown value: what lies between spaces, quotes and JSON / SQL punctuation
TOKEN = "[^\\s\"',:;{}\\[\\]()=<>/|]+"


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _phi_names() -> list[str]:
    names = set()
    for schema in CONTRACTS.values():
        names.update(c for c, col in schema.columns.items() if col.metadata.get("phi"))
    return sorted(names)


def _field_pattern(names: list[str]) -> str:
    """A regular expression (SQL literal) for a raw_row field named like one of ``names``,
    or a copy of one (a repeated header is kept as ``<name>_dup``, ``<name>_dup_dup``)."""
    return _lit(f"^(?:{'|'.join(names)})(?:_dup)*$")


def masked_quarantine_sql(source: str = "dq.quarantine", keep: tuple[str, ...] = ()) -> str:
    """The quarantine as it may be shown outside the warehouse.

    raw_row: identifier fields and their copies ``***``; fields of an unknown column
    (``extra_*``) withheld, and their name too when it is no plausible header; narrative
    fields withheld but for their length; every other value with its identifier shapes
    masked (``idds_mask_identifiers``); a record that is not a JSON object withheld.
    reasons: the quoted values withheld, the field names and the checks' words kept.
    record_key: dropped where it is an identifier, else its identifier shapes masked.
    The MRN is swapped for patient_key. ``keep``: more columns of ``source``, as they are.
    """
    phi = _field_pattern(_phi_names())
    free = _field_pattern(free_text_columns())
    phi_keyed = ", ".join(_lit(f) for f in CONTRACTS if key_column(f) in _phi_names())
    key = ("case when starts_with(e.key, 'extra_') and idds_mask_header(substr(e.key, 7)) "
           "is distinct from substr(e.key, 7) then 'extra_(withheld ' || i || ')' else e.key end")
    value = (f"case when e.value is null then null "
             f"when regexp_matches(e.key, {phi}) then '***' "
             f"when starts_with(e.key, 'extra_') then '(unmapped column withheld)' "
             f"when regexp_matches(e.key, {free}) "
             f"then '(free text withheld: ' || length(e.value) || ' characters)' "
             f"else idds_mask_identifiers(e.value) end")
    fields = "map_entries(try_cast(cast(raw_row as json) as map(varchar, varchar)))"
    return f"""
        select run_id, delivery_id, source_file, file_stem, line_number,
               case when file_stem in ({phi_keyed}) then null else idds_mask_identifiers(record_key) end
                   as record_key,
               idds_patient_key(patient_id) as patient_key,
               coalesce(
                   case when json_valid(raw_row) then case when json_type(raw_row) = 'OBJECT'
                        then '{{' || array_to_string(list_transform({fields}, lambda e, i:
                                 to_json({key}) || ':' || coalesce(to_json({value}), 'null')), ',') || '}}'
                   end end,
                   '(malformed record withheld: ' || length(raw_row) || ' characters)') as raw_row,
               check_ids, idds_mask_reasons(reasons, raw_row, check_ids) as reasons{''.join(f", {c}" for c in keep)}
        from {source}
    """


def masked_drift_sql(source: str = "dq.schema_drift") -> str:
    """Schema drift as it may be shown: each delivered header through ``idds_mask_header``
    (identifier shapes masked, implausible headers withheld) and, when two or more headers
    of a file are withheld, all of its drifted headers (the header line is a record: a file
    delivered without its header). ``kept_as`` is withheld with its header."""
    changed = "idds_mask_header(delivered_header) is distinct from delivered_header"
    return f"""
        select * exclude (_n_withheld) replace (
            case when _n_withheld >= 2 then '(header withheld: the header line looks like a record)'
                 else idds_mask_header(delivered_header) end as delivered_header,
            case when _n_withheld >= 2 or {changed} then '(withheld)' else kept_as end as kept_as)
        from (select *, sum(case when {changed} then 1 else 0 end)
                        over (partition by run_id, delivery_id, source_file) as _n_withheld
              from {source})
    """


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "and table_catalog = current_database() order by ordinal_position", [schema, table]).fetchall()]


def identifier_values_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    """A query of every identifier the warehouse knows (column ``v``), or None: the
    identifier columns of raw.patients, and in quarantined records the identifier fields
    (and their copies) and the worded values of unknown columns (a name, not a code)."""
    from expectations.contracts import phi_columns

    parts = []
    present = set(_columns(con, "raw", "patients"))
    columns = [c for c in phi_columns("patients") if c in present]
    if columns:
        values = ", ".join(f"cast({_ident(c)} as varchar)" for c in columns)
        parts.append(f"select unnest([{values}]) as v from raw.patients")
    if {"raw_row"} <= set(_columns(con, "dq", "quarantine")):
        phi = _field_pattern(_phi_names())
        parts.append(f"""
            select unnest(list_transform(list_filter(
                       map_entries(try_cast(cast(raw_row as json) as map(varchar, varchar))),
                       lambda e: regexp_matches(e.key, {phi})
                                 or (starts_with(e.key, 'extra_') and length(e.value) <= 40
                                     and regexp_matches(e.value, '[A-Za-z\\x{{80}}-\\x{{10FFFF}}]'))),
                   lambda e: e.value)) as v
            from dq.quarantine
            where case when json_valid(raw_row) then json_type(raw_row) = 'OBJECT' else false end""")
    if not parts:
        return None
    return (f"select distinct trim(v) as v from ({' union all '.join(parts)}) "
            f"where length(trim(v)) > 1 and not coalesce(idds_missing(v), false)")


def guard_identifiers_sql(con: duckdb.DuckDBPyConnection, inner: str, columns: tuple[str, ...]) -> str:
    """``inner`` with every token of its text ``columns`` that equals an identifier the
    warehouse knows (:func:`identifier_values_sql`) replaced by IDENTIFIER_MASK.

    Belt and braces behind the masking by shape: a name typed into any field, or a
    patient's MRN, name, ID or phone that no shape catches. One hash join of the tokens
    with the identifiers, so it stays fast."""
    ids = identifier_values_sql(con)
    if ids is None or not columns:
        return inner
    tokens = " union all ".join(
        f"select _sid, unnest(list_append(regexp_extract_all({c}, {_lit(TOKEN)}), trim({c}))) as _tok "
        f"from _rows where {c} is not null" for c in columns)
    guards = ", ".join(
        f"case when _hits is null then {c} "
        f"else list_reduce(_hits, lambda acc, t: replace(acc, t, {_lit(IDENTIFIER_MASK)}), {c}) end as {c}"
        for c in columns)
    return f"""
        with _rows as materialized (select row_number() over () as _sid, * from ({inner})),
        _ids as ({ids}),
        _found as (select _sid, list(distinct _tok order by length(_tok) desc) as _hits
                   from ({tokens}) t where _tok in (select v from _ids) group by _sid)
        select * exclude (_sid, _hits) replace ({guards})
        from _rows left join _found using (_sid)
    """


def published_quarantine_sql(con: duckdb.DuckDBPyConnection, source: str = "dq.quarantine") -> str:
    """The quarantine of the analyst file, the reports and ``idds quarantine``: masked,
    then guarded."""
    return guard_identifiers_sql(con, masked_quarantine_sql(source), ("record_key", "raw_row", "reasons"))


def published_drift_sql(con: duckdb.DuckDBPyConnection, source: str = "dq.schema_drift") -> str:
    """Schema drift as published: masked, then guarded."""
    return guard_identifiers_sql(con, masked_drift_sql(source), ("delivered_header", "kept_as"))


def publish(con: duckdb.DuckDBPyConnection, target: Path) -> dict[str, int]:
    """Write every marts table and the dq tables to ``target`` atomically; return row counts."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    counts: dict[str, int] = {}
    ensure_dq_schema(con)  # every dq table is published, empty when nothing wrote to it yet
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
        con.execute(f"create table publish_tmp.dq.schema_drift as {published_drift_sql(con)}")
        con.execute(f"create table publish_tmp.dq.quarantine as {published_quarantine_sql(con)}")
        for table in MASKED_DQ_TABLES:
            counts[f"dq.{table}"] = scalar(con, f"select count(*) from publish_tmp.dq.{table}")
        fault_point("mid-publish")
    finally:
        con.execute("detach publish_tmp")
    os.replace(tmp, target)
    return counts
