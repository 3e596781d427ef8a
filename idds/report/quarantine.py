"""The steward's local view of quarantined rows: masked by default, unmasked on request.

Unmasked rows are printed to the steward's terminal only, read from the working warehouse
(the protected zone); they are never written to a report, a log or the analyst file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from idds.publish import published_quarantine_sql
from idds.warehouse import connect


def print_quarantine(warehouse: Path, key: str, run_id: str | None = None, unmasked: bool = False,
                     limit: int = 50, out=None) -> int:
    """Print the quarantined rows of a run (default: the latest run that quarantined any)
    to ``out`` (default: sys.stdout at the time of the call)."""
    out = out if out is not None else sys.stdout
    if not warehouse.exists():
        print(f"error: no warehouse at {warehouse}; run `idds run` first.", file=sys.stderr)
        return 2
    with connect(warehouse, key, read_only=True) as con:
        con.execute("set variable idds_pseudonym_key = ?", [key])
        if run_id is None:
            rows = con.execute("select max(run_id) from dq.quarantine").fetchall()
            run_id = rows[0][0]
        if run_id is None:
            print("No record has been quarantined.", file=out)
            return 0
        # masked as in the analyst file (identifier fields, copies, unknown columns, notes,
        # identifier shapes, quoted values), and guarded against every identifier known
        source = "dq.quarantine" if unmasked else f"({published_quarantine_sql(con)})"
        records = con.execute(
            f"select source_file, line_number, raw_row, reasons from {source} where run_id = ? "
            "order by delivery_id, source_file, line_number limit ?", [run_id, limit]).fetchall()
    if unmasked:
        print("UNMASKED view of the protected warehouse: do not copy these rows anywhere.", file=out)
    print(f"Quarantined records of run {run_id} (first {limit}):", file=out)
    for source_file, line, raw, reasons in records:
        print(f"- {source_file} line {line}: {raw}\n    {reasons}", file=out)
    return 0
