"""The working warehouse: one DuckDB file, the only place raw identifiers live."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import jinja2

from idds.mapping import ASCII, FULLWIDTH, load_mapping

SCHEMAS = ("raw", "dq", "marts")
IDENTIFIER_MASK = "(identifier withheld)"
# what may not touch an identifier-shaped match on either side (mapping.yml)
BOUNDARIES = {"digit": "0-9", "alnum": "0-9A-Za-z"}


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def identifier_rules(patterns) -> list[dict[str, str]]:
    """The ``identifier_patterns`` of the mapping file as regexp_replace arguments (SQL
    literals): each pattern between its boundaries, replaced by IDENTIFIER_MASK."""
    rules = []
    for p in patterns:
        regex, boundary = str(p["regex"]), str(p.get("boundary", "digit"))
        if boundary not in BOUNDARIES:
            raise ValueError(f"identifier pattern {p.get('name')}: boundary must be one of {sorted(BOUNDARIES)}")
        try:
            groups = re.compile(regex).groups
        except re.error:
            groups = 0  # RE2 syntax Python does not know: DuckDB checks it
        if groups:
            raise ValueError(f"identifier pattern {p.get('name')}: use non-capturing groups (?:...)")
        edge = f"[^{BOUNDARIES[boundary]}]"
        rules.append({"regex": _sql_literal(f"(^|{edge})(?:{regex})({edge}|$)"),
                      "replacement": _sql_literal(f"\\1{IDENTIFIER_MASK}\\2")})
    return rules


@cache
def functions_sql() -> str:
    """The normalisation macros, rendered with the mapping file's tokens and enum labels."""
    mapping = load_mapping()
    template = resources.files("idds").joinpath("sql/functions.sql").read_text(encoding="utf-8")
    seen: dict[str, str] = {}
    for domain, label, code in mapping.enum_pairs():
        seen.setdefault(f"{domain}|{label}", code)
    enum_map = ", ".join(f"{_sql_literal(k)}: {_sql_literal(v)}" for k, v in seen.items())
    return jinja2.Template(template).render(
        fullwidth=FULLWIDTH,
        ascii=ASCII,
        missing_tokens=", ".join(_sql_literal(t) for t in mapping.missing_tokens),
        enum_map=enum_map,
        identifier_rules=identifier_rules(mapping.identifier_patterns),
    )


def install_functions(con: duckdb.DuckDBPyConnection, key: str | None) -> None:
    """Create the macros and set the pseudonymisation key as a session variable."""
    con.execute(functions_sql())
    if key is not None:
        con.execute("set variable idds_pseudonym_key = ?", [key])



# DuckDB's own memory; the process (Python, dbt, pandas for validation and statistics)
# needs some 0.5 GB more, so that a run stays within 3 GB
DEFAULT_MEMORY_LIMIT = "2500MB"


def memory_limit() -> str:
    """DuckDB's memory limit: IDDS_MEMORY_LIMIT, else DEFAULT_MEMORY_LIMIT."""
    return os.environ.get("IDDS_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Bounded memory for every connection, ours and dbt's: DuckDB spills to
    <warehouse>.tmp/ beyond memory_limit(), and results need not keep the insertion order
    (which would hold rows back in memory)."""
    con.execute(f"set memory_limit = '{memory_limit()}'")
    con.execute("set preserve_insertion_order = false")


@contextmanager
def connect(path: Path, key: str | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse with the macros installed; new files are owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    finally:
        os.umask(old_umask)
    try:
        bound_memory(con)
        if not read_only:
            for schema in SCHEMAS:
                con.execute(f"create schema if not exists {schema}")
            install_functions(con, key)
        yield con
    finally:
        con.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First column of the first row (DuckDB 2.0 wants every result fetched to the end)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
    )
