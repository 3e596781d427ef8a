"""The DuckDB macros parse every form the extract contract allows, and nothing else."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from idds.warehouse import install_functions


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    install_functions(c, "a-test-key-of-enough-length")
    yield c
    c.close()


def one(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()[0][0]


@pytest.mark.parametrize("token", ["", "NULL", "null", "NA", "N/A", "无", "-", "/", "  无  "])
def test_missing_tokens_are_null(con, token):
    assert one(con, "select idds_text(?)", token) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("152084", 152084.0),
        ("152084.00", 152084.0),
        ("152,084.00", 152084.0),
        ("１５２０８４", 152084.0),
        ("65kg", 65.0),
        ("7分", 7.0),
        ("130斤", 130.0),
        (" 1.62 ", 1.62),
        ("abc", None),
        ("7-8", None),
        ("NULL", None),
    ],
)
def test_numbers_in_every_contract_form(con, text, expected):
    assert one(con, "select idds_number(?)", text) == expected


def test_unit_written_inside_a_value_is_extracted(con):
    assert one(con, "select idds_value_unit(?)", "130斤") == "斤"
    assert one(con, "select idds_value_unit(?)", "65KG") == "kg"
    assert one(con, "select idds_value_unit(?)", "65") is None


@pytest.mark.parametrize(
    "text", ["2021-03-05", "2021/3/5", "2021年3月5日", "20210305", "２０２１-０３-０５"]
)
def test_dates_in_every_contract_form(con, text):
    assert one(con, "select idds_date(?)", text) == dt.date(2021, 3, 5)


@pytest.mark.parametrize(
    "text",
    ["2021-03-05 14:22", "2021/3/5 14:22:00", "2021年3月5日 14:22", "20210305T14:22:00",
     "2021-03-05T14:22:00"],
)
def test_datetimes_in_every_contract_form(con, text):
    assert one(con, "select idds_timestamp(?)", text) == dt.datetime(2021, 3, 5, 14, 22)


@pytest.mark.parametrize("text", ["44260", "2021-13-05", "2021-02-30", "05/03/2021", "yesterday", "2021-03"])
def test_non_dates_are_rejected(con, text):
    assert one(con, "select idds_date(?)", text) is None


def test_month_precision_only_where_allowed(con):
    assert one(con, "select idds_month_date(?)", "2021年3月") == dt.date(2021, 3, 1)
    assert one(con, "select idds_month_date(?)", "2021-03") == dt.date(2021, 3, 1)
    assert one(con, "select idds_month_date(?)", "2021-03-17") == dt.date(2021, 3, 17)


@pytest.mark.parametrize(
    "domain, label, code",
    [("sex", "男", "M"), ("sex", " f ", "F"), ("sex", "2", "F"), ("route", "鞘内", "IT"),
     ("dose_unit", "μg", "ug"), ("dose_unit", "MCG", "ug"), ("pump_drug", "吗啡+布比卡因", "morphine+bupivacaine"),
     ("yes_no", "否", "no"), ("insurance_type", "城镇职工医保", "employee")],
)
def test_enums_in_english_or_chinese(con, domain, label, code):
    assert one(con, "select idds_enum(?, ?)", domain, label) == code


def test_unknown_enum_label_is_null(con):
    assert one(con, "select idds_enum('sex', 'X')") is None


@pytest.mark.parametrize(
    "text, code", [("C34.900x001", "C34.9"), ("C349", "C34.9"), ("c79.500", "C79.5"), ("G89.3", "G89.3"),
                   ("C18", "C18"), ("乱码", None)]
)
def test_icd10_codes_lose_national_extensions(con, text, code):
    assert one(con, "select idds_icd10(?)", text) == code


def test_patient_key_is_keyed_and_stable(con):
    a = one(con, "select idds_patient_key('0012345678')")
    assert a == one(con, "select idds_patient_key(' 0012345678 ')")
    assert a.startswith("pk_") and "0012345678" not in a
    other = duckdb.connect()
    install_functions(other, "another-key-of-enough-length")
    assert one(other, "select idds_patient_key('0012345678')") != a


@pytest.mark.parametrize(
    "text, level",
    [("L2/3", "L2-L3"), ("L2-3", "L2-L3"), ("腰2-3", "L2-L3"), ("L2~3", "L2-L3"), ("L2-L3", "L2-L3"),
     ("T12/L1", "T12-L1"), ("l3/4", "L3-L4"), ("L2", None), ("abc", None)],
)
def test_interspace_notations_normalise(con, text, level):
    assert one(con, "select idds_interspace(?)", text) == level


@pytest.mark.parametrize("text, level", [("T6", "T6"), ("T6椎体", "T6"), ("t10", "T10"), ("胸8", "T8"), ("L1", "L1"), ("T", None)])
def test_vertebral_levels_normalise(con, text, level):
    assert one(con, "select idds_level(?)", text) == level
