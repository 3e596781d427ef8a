"""Load one delivery into ``raw.*`` in one transaction, executing the pandera contracts
in DuckDB; every record ends up loaded, quarantined with its reasons, or counted as a
duplicate, and the identity is checked before the transaction commits."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from expectations.contracts import CheckSpec, check_specs, key_column, phi_columns, required_columns
from idds.dq import record_check_result
from idds.ingest.files import (
    DeliveredFile,
    Delivery,
    DeliveryRefused,
    FileRefused,
    check_manifest,
    check_manifest_rows,
    count_records,
    numbered_path,
    prepare,
    read_csv_sql,
    read_direct,
    scan_direct,
)
from idds.mapping import Mapping, fold
from idds.warehouse import scalar, table_exists

LINEAGE = ["_delivery_id", "_source_file", "_line_number", "_file_sha256", "_loaded_at", "_run_id"]
FAULT_ENV = "IDDS_FAULT"


class ReconciliationError(Exception):
    """rows_read != rows_loaded + rows_quarantined + rows_duplicate: the run must fail."""


@dataclass
class FileCounts:
    delivery_id: str
    source_file: str
    file_stem: str | None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    status: str = "loaded"
    message: str | None = None
    encoding: str | None = None


def fault_point(name: str) -> None:
    """Kill the process here when IDDS_FAULT names this point (crash-safety tests)."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(86)


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_names(header: list[str], stem: str, mapping: Mapping) -> tuple[list[str], list[tuple[str, str]]]:
    """Canonical names for a delivered header, and its drift: unknown columns kept as
    ``extra_<name>``, a column named twice kept as ``<name>_dup`` (said so)."""
    aliases = mapping.header_map(stem)
    names: list[str] = []
    drift: list[tuple[str, str]] = []
    for raw in header:
        canonical = aliases.get(fold(raw))
        unknown = canonical is None
        if unknown:
            slug = re.sub(r"\W+", "_", fold(raw), flags=re.UNICODE).strip("_") or "unnamed"
            canonical = f"extra_{slug}"
        repeated = canonical in names
        while canonical in names:
            canonical += "_dup"
        if repeated:
            drift.append((f"{raw} (the header names this column again)", canonical))
        elif unknown:
            drift.append((raw, canonical))
        names.append(canonical)
    return names, drift


def _not_a_header(header: list[str], names: list[str], stem: str) -> bool:
    """Whether the first line is a record rather than a header: no field of it names a
    column of the file, or a required column is missing and most fields name none."""
    known = sum(not n.startswith("extra_") for n in names)
    missing = any(c not in names for c in required_columns(stem))
    return known == 0 or (missing and known * 2 < len(header))


def _ensure_raw_table(con: duckdb.DuckDBPyConnection, stem: str, columns: list[str], mapping: Mapping) -> None:
    table = f"raw.{_q(stem)}"
    if not table_exists(con, "raw", stem):
        cols = [f"{_q(c)} varchar" for c in mapping.columns(stem)]
        cols += [
            '"_delivery_id" varchar', '"_source_file" varchar', '"_line_number" bigint',
            '"_file_sha256" varchar', '"_loaded_at" timestamp', '"_run_id" varchar',
        ]
        con.execute(f"create table {table} ({', '.join(cols)})")
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema='raw' and table_name=?",
        [stem]).fetchall()}
    for column in columns:
        if column not in existing:
            con.execute(f"alter table {table} add column {_q(column)} varchar")


def _quarantine_file_rows(con, run_id: str, fc: FileCounts, prepared_path: Path, check_id: str, message: str) -> None:
    """A refused file: every record goes to quarantine with the file-level reason."""
    con.execute(
        """
        insert into dq.quarantine
        select ?, ?, ?, ?, try_cast(split_part(line, ',', 1) as bigint), null, null,
               substr(line, strpos(line, ',') + 1), [?], ?
        from read_csv(?, header=true, columns={'line': 'varchar'}, delim=chr(1), quote='',
                      escape='', auto_detect=false, strict_mode=false)
        where regexp_matches(line, '^[0-9]+,')
        """,
        [run_id, fc.delivery_id, fc.source_file, fc.file_stem, check_id, message, str(prepared_path)],
    )


def _passes(spec: CheckSpec) -> str:
    """SQL that is TRUE when a row passes ``spec``; a NULL verdict is a failure."""
    return f"coalesce({spec.sql.format(c=_q(spec.column))}, false)"


def _find_candidates(con: duckdb.DuckDBPyConnection, specs: list[CheckSpec], key: str) -> None:
    """Create ``_candidates``: the rows of ``_load`` (``_rid`` = rowid, then its columns) that
    may hold a contract failure, a superset of the failing rows.

    Evaluating every check on every row is the costly part of ingestion (regular
    expressions, millions of rows), but a check is a deterministic function of the columns
    it reads, and a delivery repeats few values (codes, doses, dates) over many rows. So the
    checks reading the same columns (a *unit*: the column, plus ``needs`` for row checks) are
    evaluated once per DISTINCT tuple of those columns, and only the rows holding a failing
    tuple are looked up again in ``_load`` (semi-joins against small tables; NULL is a value
    like any other). The key column is unique by contract, so DISTINCT would not reduce it:
    the checks reading it run on each row, in the scan that also picks the rows with a
    malformed line number or a conflicting key (matched on the key alone: a superset).
    ``_checked`` then computes the exact verdicts on the candidates only: a table, so that the
    optimizer cannot push that (costly) filter below the semi-join, onto every row again.
    """
    units: dict[tuple[str, ...], list[CheckSpec]] = {}
    for spec in specs:
        units.setdefault(tuple(sorted({spec.column, *spec.needs})), []).append(spec)
    direct = [spec for columns, unit in units.items() if key in columns for spec in unit]
    grouped = [(columns, unit) for columns, unit in units.items() if key not in columns]

    def fails(unit: list[CheckSpec]) -> str:
        return " or ".join(f"not {_passes(spec)}" for spec in unit) or "false"

    parts = [
        f"select rowid as _rid from _load where {fails(direct)} "
        "or try_cast(_line_number as bigint) is null "
        f"or idds_text({_q(key)}) in (select _k from _conflicts)"
    ]
    if grouped:
        # the distinct tuples are stored before they are checked: within one statement the
        # optimizer would push the checks below the DISTINCT, back onto every row
        con.execute("create or replace temp table _values as " + " union all by name ".join(
            f"select {i} as _unit, * from (select distinct {', '.join(map(_q, columns))} from _load)"
            for i, (columns, _) in enumerate(grouped)))
        con.execute("create or replace temp table _bad_values as select * from _values where case _unit "
                    + " ".join(f"when {i} then {fails(unit)}" for i, (_, unit) in enumerate(grouped))
                    + " end")
        for (i,) in con.execute("select distinct _unit from _bad_values order by 1").fetchall():
            columns = grouped[i][0]
            parts.append(
                f"select _load.rowid from _load semi join "
                f"(select {', '.join(map(_q, columns))} from _bad_values where _unit = {i}) bad on "
                + " and ".join(f"_load.{_q(c)} is not distinct from bad.{_q(c)}" for c in columns))
    con.execute("create or replace temp table _candidates as select rowid as _rid, * from _load "
                f"where rowid in ({' union all '.join(parts)})")


def load_file(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    delivery: Delivery,
    file: DeliveredFile,
    mapping: Mapping,
    work: Path,
    loaded_at: datetime,
) -> FileCounts:
    """Load one file of a delivery inside the caller's transaction."""
    stem = file.stem
    fc = FileCounts(delivery.delivery_id, file.path.name, stem)
    where = f"{delivery.delivery_id}/{file.path.name}"
    copy = work / f"{delivery.delivery_id}__{stem}.csv"
    # DuckDB reads the common file as delivered (see files.scan_direct); prepare()'s decoding
    # pass, as before, for any other file and whenever the direct read cannot prove the
    # same records and line numbers (a .gz decompressed by the scan is not decompressed again)
    prepared = None
    records = None
    source, direct = scan_direct(file.path, copy)
    if direct is not None:
        names, _ = _column_names(direct.header, stem, mapping)
        if all(c in names for c in required_columns(stem)):
            records = read_direct(con, direct, names)
    if records is None:
        try:
            prepared = prepare(source, numbered_path(copy))
        except FileRefused:
            if source == file.path:
                raise
            # refused all the same, but with the decoder's message as read from the .gz
            prepared = prepare(file.path, numbered_path(copy))
        records, encoding, header = prepared.records, prepared.encoding, prepared.header
    else:
        encoding, header = direct.encoding, direct.header
    if source != file.path:
        source.unlink(missing_ok=True)  # the decompressed copy has been read
    fc.rows_read = records
    fc.encoding = encoding + (" (gzip)" if file.path.name.lower().endswith(".gz") else "")
    check_manifest_rows(delivery, file, records)
    names, drift = _column_names(header, stem, mapping)
    if _not_a_header(header, names, stem):
        raise DeliveryRefused(
            f"delivery {delivery.delivery_id}: {file.path.name} has no header line: its first line names "
            f"{sum(not n.startswith('extra_') for n in names)} of the {len(header)} fields as columns of the "
            f"{stem} file (a file exported without its header?); nothing of the delivery was loaded.")
    for delivered, kept in drift:
        con.execute(
            "insert into dq.schema_drift values (?, ?, ?, ?, ?, ?)",
            [run_id, delivery.delivery_id, file.path.name, stem, delivered, kept],
        )
    missing = [c for c in required_columns(stem) if c not in names]
    if missing:
        fc.status = "refused"
        fc.message = (
            f"{where}: required column {', '.join(missing)} is missing from the header; "
            "the file was refused and its records quarantined."
        )
        check_id = f"raw.{stem}.{missing[0]}.column_missing"
        _quarantine_file_rows(con, run_id, fc, prepared.path, check_id, fc.message)
        fc.rows_quarantined = prepared.records
        record_check_result(
            con, run_id, check_id, "pandera", prepared.records, prepared.records, detail=where,
            drilldown_sql=(f"select * from dq.quarantine where run_id = {_lit(run_id)} and delivery_id = "
                           f"{_lit(delivery.delivery_id)} and source_file = {_lit(file.path.name)} "
                           f"and list_contains(check_ids, {_lit(check_id)})"))
        return fc

    if prepared is not None:
        con.execute("drop table if exists _rej; drop table if exists _rej_scan; drop table if exists _load")
        con.execute(f"create temp table _load as select * from {read_csv_sql(prepared.path, ['_line_number', *names])}")
    fault_point("mid-file")

    # records that are not CSV records of this header: one quarantine row per record
    con.execute(
        f"""
        insert into dq.quarantine
        with r as (
            select byte_position, trim(csv_line, chr(13) || chr(10)) as csv_line, error_message,
                   try_cast(regexp_extract(trim(csv_line, chr(13) || chr(10)), '^([0-9]+),', 1) as bigint)
                       as prefixed
            from _rej
        ), numbered as (
            select *, max(prefixed) over (order by byte_position rows unbounded preceding) as line_number
            from r
        )
        select ?, ?, ?, ?, line_number, null, null,
               regexp_replace(first(csv_line order by byte_position), '^[0-9]+,', ''),
               ['raw.{stem}.record.malformed'],
               {_lit(where)} || ' line ' || line_number || ': the record is not a valid CSV record of this header ('
                   || 'it holds about ' || (len(string_split(first(csv_line order by byte_position), ',')) - 1)
                   || ' comma-separated fields in ' || length(first(csv_line order by byte_position))
                   || ' characters where the header has {len(names)} fields; '
                   || first(error_message order by byte_position) || ').'
        from numbered where line_number is not null group by line_number
        """,
        [run_id, delivery.delivery_id, file.path.name, stem],
    )
    malformed = scalar(
        con,
        "select count(*) from dq.quarantine where run_id=? and delivery_id=? and source_file=?",
        [run_id, delivery.delivery_id, file.path.name],
    )

    specs = [s for s in check_specs(stem) if s.column in names and all(n in names for n in s.needs)]
    key = key_column(stem)
    delivered = [c for c in names]
    fail_items = ", ".join(
        f"case when not {_passes(s)} then "
        f"{_lit(s.check_id + chr(9) + s.column + chr(9) + s.message)} end"
        for s in specs
    ) or "null"
    updated = "idds_timestamp(updated_at)" if "updated_at" in names else "null"
    cols = ", ".join(_q(c) for c in delivered)
    # exact duplicates: a 64-bit hash finds the candidate groups cheaply, then only the rows
    # of those candidates are grouped by their values (exact; no sort of the whole file).
    # Rows are identified by the temp table's rowid (stable: _load is never updated).
    con.execute(
        f"""
        create or replace temp table _duplicate_lines as
        with cand as (select hash({cols}) as _h from _load group by _h having count(*) > 1),
        rows as (
            select rowid as _rid, try_cast(_line_number as bigint) as _ln,
                   min(try_cast(_line_number as bigint)) over (partition by {cols}) as _first_ln,
                   count(*) over (partition by {cols}) as _n
            from _load where hash({cols}) in (select _h from cand)
        )
        select _rid, _ln, _first_ln from rows where _n > 1
        """
    )
    con.execute("delete from _duplicate_lines where _ln = _first_ln")
    not_dup = "rowid not in (select _rid from _duplicate_lines)"
    con.execute(
        f"""
        create or replace temp table _conflicts as
        with base as (
            select idds_text({_q(key)}) as _k, coalesce(cast({updated} as varchar), '') as _u
            from _load where {not_dup} and idds_text({_q(key)}) is not null
        ), cand as (select hash(_k, _u) as _h from base group by _h having count(*) > 1)
        select _k, _u from base where hash(_k, _u) in (select _h from cand)
        group by all having count(*) > 1
        """
    )
    # only the rows failing a check are kept: the passing ones are read from _load. The
    # verdicts are computed on the candidate rows only (see _find_candidates).
    _find_candidates(con, specs, key)
    con.execute(
        f"""
        create or replace temp table _checked as
        select * from (
            select _load._rid, try_cast(_line_number as bigint) as _ln,
                   list_filter([{fail_items}], lambda x: x is not null)
                      || case when _conflicts._k is not null
                              then [{_lit(f'raw.{stem}.{key}.unique{chr(9)}{key}{chr(9)}is a key that another, different record of this delivery also holds (conflict)')}]
                              else [] end
                      || case when try_cast(_line_number as bigint) is null then [{_lit(f'raw.{stem}.record.malformed{chr(9)}_line_number{chr(9)}is not a record of this file')}] else [] end
                      as _failed
            from _candidates as _load
            left join _conflicts
                on _conflicts._k = idds_text(_load.{_q(key)})
                and _conflicts._u = coalesce(cast({updated} as varchar), '')
            where _load._rid not in (select _rid from _duplicate_lines)
        ) where len(_failed) > 0
        """
    )
    phi = set(phi_columns(stem))
    raw_json = "to_json(struct_pack(" + ", ".join(f"{_q(c)} := {_q(c)}" for c in delivered) + "))"
    value_of = " ".join(
        f"when {_lit(c)} then " + ("'(identifier withheld)'" if c in phi else f"coalesce({_q(c)}, '')")
        for c in delivered
    )
    con.execute(
        f"""
        insert into dq.quarantine
        select ?, ?, ?, ?, _ln, {('null' if key in phi else f'idds_text({_q(key)})')},
               {('idds_text(patient_id)' if 'patient_id' in names else 'null')},
               {raw_json},
               list_transform(_failed, lambda x: split_part(x, chr(9), 1)),
               {_lit(where)} || ' line ' || coalesce(cast(_ln as varchar), '?') || ': ' ||
               array_to_string(list_transform(_failed, lambda x:
                   'field ' || split_part(x, chr(9), 2) || ' (''' ||
                   case split_part(x, chr(9), 2) {value_of} else '' end
                   || ''') ' || split_part(x, chr(9), 3)), '; ') || '.'
        from _checked join _load on _load.rowid = _checked._rid
        """,
        [run_id, delivery.delivery_id, file.path.name, stem],
    )
    con.execute(
        "insert into dq.duplicate_row select ?, ?, ?, ?, _ln, _first_ln from _duplicate_lines",
        [run_id, delivery.delivery_id, file.path.name, stem],
    )
    contract_failed = scalar(con, "select count(*) from _checked")
    duplicates = scalar(con, "select count(*) from _duplicate_lines")
    tested = scalar(con, "select count(*) from _load") - duplicates

    _ensure_raw_table(con, stem, delivered, mapping)
    select_cols = ", ".join(_q(c) for c in delivered)
    con.execute(
        f"""
        insert into raw.{_q(stem)} by name
        select {select_cols}, ? as _delivery_id, ? as _source_file,
               try_cast(_line_number as bigint) as _line_number,
               ? as _file_sha256, ? as _loaded_at, ? as _run_id
        from _load
        where rowid not in (select _rid from _duplicate_lines) and rowid not in (select _rid from _checked)
        """,
        [delivery.delivery_id, file.path.name, file.sha256, loaded_at, run_id],
    )
    fc.rows_loaded = tested - contract_failed
    fc.rows_quarantined = malformed + contract_failed
    fc.rows_duplicate = duplicates

    # one result per contract check: rows failing it / rows tested
    counts = dict(con.execute(
        "select c, count(*) from (select unnest(list_transform(_failed, lambda x: split_part(x, chr(9), 1))) c "
        "from _checked) group by c").fetchall())
    scope = (f"run_id = {_lit(run_id)} and delivery_id = {_lit(delivery.delivery_id)} "
             f"and source_file = {_lit(file.path.name)}")

    def quarantined(check_id: str) -> str:
        return f"select * from dq.quarantine where {scope} and list_contains(check_ids, {_lit(check_id)})"

    for spec in specs:
        record_check_result(con, run_id, spec.check_id, "pandera", counts.get(spec.check_id, 0), tested,
                            detail=where, drilldown_sql=quarantined(spec.check_id))
    for check_id in (f"raw.{stem}.{key}.unique", f"raw.{stem}.record.malformed"):
        failed = counts.get(check_id, 0) + (malformed if check_id.endswith("malformed") else 0)
        record_check_result(con, run_id, check_id, "pandera", failed, fc.rows_read, detail=where,
                            drilldown_sql=quarantined(check_id))
    record_check_result(con, run_id, f"raw.{stem}.record.duplicate", "pandera", duplicates, fc.rows_read,
                        detail=where, drilldown_sql=f"select * from dq.duplicate_row where {scope}")
    con.execute("drop table if exists _checked; drop table if exists _load; "
                "drop table if exists _duplicate_lines; drop table if exists _conflicts; "
                "drop table if exists _values; drop table if exists _bad_values; drop table if exists _candidates")
    return fc


def load_delivery(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    delivery: Delivery,
    mapping: Mapping,
    work: Path,
) -> list[FileCounts]:
    """Load a delivery as one transaction; a refusal or an error leaves nothing of it."""
    loaded_at = datetime.now()
    results: list[FileCounts] = []
    # decoded copies hold identifiers: they live only while the delivery loads, owner-only
    work = work / f"delivery-{delivery.delivery_id}"
    old_umask = os.umask(0o077)
    con.execute("begin transaction")
    try:
        check_manifest(delivery)
        seen = dict(con.execute(
            "select sha256, any_value(delivery_id || '/' || source_file) from dq.ingest_file "
            "group by sha256").fetchall())
        done = already_loaded(con, delivery)
        for index, file in enumerate(delivery.files):
            if index:
                fault_point("between-files")
            where = f"{delivery.delivery_id}/{file.path.name}"
            if (file.path.name, file.sha256) in done:
                continue  # this very file of this delivery was loaded by an earlier run
            if file.stem is None:
                fc = FileCounts(delivery.delivery_id, file.path.name, None, status="unknown_file",
                                message=f"{where}: the file name matches no file of the extract contract; it was not loaded.")
            elif file.sha256 in seen:
                records = count_records(con, file.path, work / f"{delivery.delivery_id}__{file.stem}.csv")
                check_manifest_rows(delivery, file, records)
                fc = FileCounts(delivery.delivery_id, file.path.name, file.stem,
                                rows_read=records, rows_duplicate=records,
                                status="resent", message=f"{where} is identical to {seen[file.sha256]}, loaded before; not loaded again.")
            else:
                try:
                    fc = load_file(con, run_id, delivery, file, mapping, work, loaded_at)
                except FileRefused as exc:  # unreadable: its records cannot even be counted
                    raise DeliveryRefused(
                        f"delivery {delivery.delivery_id}: {file.path.name} {exc}; nothing of the delivery "
                        "was loaded (it waits for a readable redelivery).") from exc
            seen.setdefault(file.sha256, where)
            results.append(fc)
        _conflicts_across_files(con, run_id, delivery, [fc for fc in results if fc.status == "loaded"])
        for fc, file in ((fc, next(f for f in delivery.files if f.path.name == fc.source_file))
                         for fc in results):
            _check_identity(fc)
            con.execute(
                "insert into dq.dq_reconciliation values (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [run_id, fc.delivery_id, fc.source_file, fc.file_stem, fc.rows_read, fc.rows_loaded,
                 fc.rows_quarantined, fc.rows_duplicate, fc.status, fc.message],
            )
            con.execute(
                "insert into dq.ingest_file values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, delivery.delivery_id, file.path.name, file.stem, file.sha256, fc.encoding, fc.status,
                 fc.message, loaded_at],
            )
        con.execute(
            "insert into dq.dq_delivery values (?, ?, 'loaded', ?, ?, null)",
            [run_id, delivery.delivery_id, delivery.manifest is not None, len(delivery.files)],
        )
        con.execute("commit")
    except DeliveryRefused as exc:
        con.execute("rollback")
        con.execute(
            "insert into dq.dq_delivery values (?, ?, 'refused', ?, ?, ?)",
            [run_id, delivery.delivery_id, delivery.manifest is not None, len(delivery.files), str(exc)],
        )
        raise
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        os.umask(old_umask)
        shutil.rmtree(work, ignore_errors=True)
    return results


def _conflicts_across_files(con: duckdb.DuckDBPyConnection, run_id: str, delivery: Delivery,
                            loaded: list[FileCounts]) -> None:
    """Two files of one delivery for the same contract file (``patients.csv`` and
    ``患者信息.csv``): a record key held by different records in both is a key conflict
    (every such record quarantined: which one is right cannot be decided); the same record
    in both is loaded once and counted as a duplicate in the later file."""
    stems = sorted({fc.file_stem for fc in loaded if sum(f.file_stem == fc.file_stem for f in loaded) > 1})
    for stem in stems:
        key = key_column(stem)
        columns = [c for c in _raw_columns(con, stem) if not c.startswith("_")]
        record = "md5(to_json(struct_pack(" + ", ".join(f"{_q(c)} := {_q(c)}" for c in columns) + ")))"
        con.execute(f"""
            create or replace temp table _across as
            select rowid as _rid, idds_text({_q(key)}) as _k, _source_file, _line_number, {record} as _r,
                   count(distinct _source_file) over (partition by idds_text({_q(key)})) as _files,
                   count(distinct {record}) over (partition by idds_text({_q(key)})) as _versions,
                   row_number() over (partition by idds_text({_q(key)}), {record}
                                      order by _source_file, _line_number) as _nth
            from raw.{_q(stem)} where _delivery_id = ? and _run_id = ? and idds_text({_q(key)}) is not null
            """, [delivery.delivery_id, run_id])
        con.execute("delete from _across where _files < 2")
        phi = set(phi_columns(stem))
        raw_json = "to_json(struct_pack(" + ", ".join(f"{_q(c)} := r.{_q(c)}" for c in columns) + "))"
        check_id = f"raw.{stem}.{key}.unique"
        con.execute(f"""
            insert into dq.quarantine
            select ?, ?, r._source_file, ?, r._line_number, {'null' if key in phi else f'idds_text(r.{_q(key)})'},
                   {'idds_text(r.patient_id)' if 'patient_id' in columns else 'null'}, {raw_json}, [?],
                   ? || '/' || r._source_file || ' line ' || r._line_number || ': field {key} is a key that a '
                   || 'different record of another file of this delivery also holds (conflict).'
            from raw.{_q(stem)} r join _across a on a._rid = r.rowid where a._versions > 1
            """, [run_id, delivery.delivery_id, stem, check_id, delivery.delivery_id])
        for fc in (f for f in loaded if f.file_stem == stem):
            conflicting, repeated = con.execute(
                "select count(*) filter (where _versions > 1), count(*) filter (where _versions = 1 and _nth > 1) "
                "from _across where _source_file = ?", [fc.source_file]).fetchall()[0]
            fc.rows_loaded -= conflicting + repeated
            fc.rows_quarantined += conflicting
            fc.rows_duplicate += repeated
            record_check_result(con, run_id, check_id, "pandera", conflicting, fc.rows_read,
                                detail=f"{delivery.delivery_id}/{fc.source_file}: keys held by another file")
        con.execute(f"delete from raw.{_q(stem)} where rowid in (select _rid from _across "
                    "where _versions > 1 or _nth > 1)")
        con.execute("drop table _across")


def _raw_columns(con: duckdb.DuckDBPyConnection, stem: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ? "
        "order by ordinal_position", [stem]).fetchall()]


def already_loaded(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> set[tuple[str, str]]:
    """(file name, sha256) pairs of this delivery that an earlier run already took in."""
    return set(con.execute(
        "select source_file, sha256 from dq.ingest_file where delivery_id = ?",
        [delivery.delivery_id]).fetchall())


def is_new(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> bool:
    """True when the delivery holds a file (by name and content) not taken in before."""
    if delivery.links:
        return True  # refused on every run until the links are gone
    done = already_loaded(con, delivery)
    return any((f.path.name, f.sha256) not in done for f in delivery.files)


def _check_identity(fc: FileCounts) -> None:
    total = fc.rows_loaded + fc.rows_quarantined + fc.rows_duplicate
    if fc.rows_read != total:
        raise ReconciliationError(
            f"{fc.delivery_id}/{fc.source_file}: {fc.rows_read} records read but "
            f"{fc.rows_loaded} loaded + {fc.rows_quarantined} quarantined + "
            f"{fc.rows_duplicate} duplicate = {total}; the run stops so that nothing is lost."
        )


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, mapping: Mapping) -> None:
    """Create an empty ``raw.<file>`` for every contract file, so models always build."""
    for stem in mapping.files:
        _ensure_raw_table(con, stem, [], mapping)
