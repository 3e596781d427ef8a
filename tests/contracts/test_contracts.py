"""The pandera contracts: pandera's own execution and the DuckDB executor agree."""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pytest

from expectations.contracts import CONTRACTS, check_specs, key_column, phi_columns, required_columns
from idds.mapping import load_mapping


def test_every_contract_file_has_a_contract_and_its_mapping_columns():
    mapping = load_mapping()
    assert set(CONTRACTS) == set(mapping.files)
    for file, schema in CONTRACTS.items():
        assert set(schema.columns) <= set(mapping.columns(file)), file
        assert key_column(file) in required_columns(file)


def test_direct_identifiers_are_marked():
    assert set(phi_columns("patients")) == {"patient_id", "name", "id_number", "phone"}


def test_check_ids_are_stable_and_unique():
    ids = [s.check_id for f in CONTRACTS for s in check_specs(f)]
    assert len(ids) == len(set(ids))
    assert "raw.patients.sex.accepted" in ids
    assert "raw.followups.nrs.range" in ids
    assert "raw.medication_orders.start_time.datetime" in ids


def _pandera_failures(file: str, frame: pd.DataFrame) -> set[tuple[int, str]]:
    """(row index, check id) pairs that pandera's pandas backend reports."""
    schema = CONTRACTS[file]
    by_message = {(s.column, s.message): s.check_id for s in check_specs(file)}
    frame_level = {s.message: s.check_id for s in check_specs(file) if s.needs}
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return {(int(r.index), by_message.get((r.column, r.check)) or frame_level[r.check])
                for r in cases.itertuples()}
    return set()


def _sql_failures(file: str, frame: pd.DataFrame) -> set[tuple[int, str]]:
    """(row index, check id) pairs that the compiled DuckDB predicates report."""
    import duckdb

    from idds.warehouse import install_functions

    con = duckdb.connect()
    install_functions(con, None)
    con.register("f", frame.reset_index(names="_i"))
    out = set()
    for spec in check_specs(file):
        if spec.column not in frame.columns:
            continue
        predicate = spec.sql.format(c=chr(34) + spec.column + chr(34)) if not spec.needs else spec.sql
        rows = con.execute(f"select _i from f where not coalesce({predicate}, false)").fetchall()
        out |= {(int(r[0]), spec.check_id) for r in rows}
    return out


@pytest.mark.parametrize(
    "file, frame",
    [
        ("patients", pd.DataFrame({
            "patient_id": ["0012345678", "", "NULL", "0000000004"],
            "sex": ["男", "x", "F", "2"],
            "birth_date": ["1960/3/5", "19600305", "1960年3月5日", "05-03-1960"],
            "insurance_type": ["自费", "employee", "bogus", None],
        })),
        ("followups", pd.DataFrame({
            "followup_id": ["F1", "F2", "F3", "F4"],
            "patient_id": ["1", "2", "3", "4"],
            "contact_date": ["2023-01-02", "2023/1/2", "bad", "20230102"],
            "outcome": ["reached", "已联系", "失访", "gone"],
            "nrs": ["3", "7分", "11", "7.5"],
        })),
        ("measurements", pd.DataFrame({
            "measurement_id": ["M1", "M2", "M3", "M4", "M5"],
            "patient_id": ["1", "2", "3", "4", "5"],
            "measured_at": ["2022-01-01 10:00"] * 5,
            "item": ["nrs", "体重", "adl", "height", "疼痛部位"],
            "value": ["7分", "-5", "105", "1.62", "腰骶部"],
        })),
        ("idds_implants", pd.DataFrame({
            "implant_id": ["I1", "I2", "I3"],
            "patient_id": ["1", "2", None],
            "procedure_id": ["P1", "P2", "P3"],
            "indication": ["癌痛", "cancer_pain", "pain"],
            "is_replacement": ["否", "YES", "maybe"],
            "explant_date": [None, "2022-13-01", "2022-10-01"],
        })),
    ],
)
def test_pandera_and_duckdb_report_the_same_failures(file, frame):
    expected = _pandera_failures(file, frame)
    assert expected, "the sample must hold failures"
    assert _sql_failures(file, frame) == expected
