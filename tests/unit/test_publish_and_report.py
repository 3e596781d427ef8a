"""Publishing is atomic and masked; the report never hides a small count."""

from __future__ import annotations

import duckdb
import pytest
from test_ingest import KEY, PATIENTS, load_all, write

from idds.publish import publish
from idds.report.format import percent, ratio
from idds.warehouse import connect


@pytest.fixture
def loaded(settings):
    write(settings.landing / "2024-01-01" / "patients.csv", PATIENTS)
    load_all(settings)
    with connect(settings.warehouse, KEY) as con:
        con.execute("create table marts.cohort_idds as select 1 as n")
    return settings


def test_published_quarantine_masks_identifiers_and_adds_patient_key(loaded):
    with connect(loaded.warehouse, KEY) as con:
        publish(con, loaded.publish)
        expected_key = con.execute("select idds_patient_key('0000000003')").fetchall()[0][0]
    con = duckdb.connect(str(loaded.publish), read_only=True)
    rows = con.execute("select patient_key, raw_row, reasons from dq.quarantine order by line_number").fetchall()
    assert len(rows) == 4
    everything = repr(rows)
    for identifier in ["0000000003", "0000000004", "0000000006", "王五", "赵六", "甲", "乙"]:
        assert identifier not in everything
    assert rows[0][0] == expected_key
    assert rows[1][1].startswith("(malformed record withheld")
    assert '"name":"***"' in rows[0][1] and '"sex":"Q"' in rows[0][1]


def test_a_reader_keeps_the_old_snapshot_across_a_publish(loaded):
    with connect(loaded.warehouse, KEY) as con:
        publish(con, loaded.publish)
    reader = duckdb.connect(str(loaded.publish), read_only=True)
    assert reader.execute("select n from marts.cohort_idds").fetchall() == [(1,)]
    with connect(loaded.warehouse, KEY) as con:
        con.execute("create or replace table marts.cohort_idds as select 2 as n")
        publish(con, loaded.publish)
    assert reader.execute("select n from marts.cohort_idds").fetchall() == [(1,)]
    reader.close()
    fresh = duckdb.connect(str(loaded.publish), read_only=True)
    assert fresh.execute("select n from marts.cohort_idds").fetchall() == [(2,)]
    fresh.close()
    assert not list(loaded.publish.parent.glob(".*.tmp"))


def test_the_working_warehouse_is_owner_only(loaded):
    assert loaded.warehouse.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "failed, tested, shown",
    [(0, 10, "0 %"), (3, 1_204_512, "< 0.01 %"), (1, 3, "33.33 %"), (5, 5, "100.00 %"), (1, 0, "–")],
)
def test_percent_never_shows_a_nonzero_count_as_zero(failed, tested, shown):
    assert percent(failed, tested) == shown


def test_ratio_shows_both_counts():
    assert ratio(3, 1_204_512) == "3 / 1,204,512"
