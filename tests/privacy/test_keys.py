"""patient_key: a keyed hash; the same key links runs, another key cannot be linked."""

from __future__ import annotations

import csv
import re
import stat

import duckdb
import pytest

from idds.pseudonym import KEY_ENV, MIN_KEY_LENGTH, ensure_demo_key, load_key
from idds.settings import DEFAULT_KEY_FILE, PROJECT_DIR, ConfigError, Settings
from idds.warehouse import connect, install_functions

KEY_A = "test-key-not-for-production-0001"
KEY_B = "another-key-for-another-centre-02"
MRNS = ["0001421908", "0001639885", "0058496662", "0099999999", " 0001705752 ", "０００１７４７０８４"]
IDENTIFIER_COLUMNS = {"patient_id", "name", "id_number", "phone", "mrn", "病案号", "姓名", "身份证号", "联系电话"}


def keys_for(path, key: str, mrns=MRNS) -> list[str]:
    with connect(path, key) as con:
        return [con.execute("select idds_patient_key(?)", [m]).fetchall()[0][0] for m in mrns]


def test_the_same_key_gives_the_same_patient_keys_across_connections_and_files(tmp_path):
    first = keys_for(tmp_path / "run1.duckdb", KEY_A)
    second = keys_for(tmp_path / "run2.duckdb", KEY_A)
    in_memory = duckdb.connect()
    install_functions(in_memory, KEY_A)
    third = [in_memory.execute("select idds_patient_key(?)", [m]).fetchall()[0][0] for m in MRNS]
    in_memory.close()
    assert first == second == third
    assert all(re.fullmatch(r"pk_[0-9a-f]{20}", k) for k in first)
    # the MRN is normalised first: padding and full-width digits give the same key
    assert first[4] == keys_for(tmp_path / "run1.duckdb", KEY_A, ["0001705752"])[0]
    assert first[5] == keys_for(tmp_path / "run1.duckdb", KEY_A, ["0001747084"])[0]
    assert len(set(first[:4])) == 4


def test_another_key_gives_unlinkable_patient_keys(tmp_path):
    a = keys_for(tmp_path / "a.duckdb", KEY_A)
    b = keys_for(tmp_path / "b.duckdb", KEY_B)
    assert not set(a) & set(b)
    # no shared prefix or suffix that could serve as a join key either
    assert not {k[3:9] for k in a} & {k[3:9] for k in b}
    assert not {k[-6:] for k in a} & {k[-6:] for k in b}


def test_the_published_keys_are_the_keyed_hashes_of_the_delivered_mrns(pipeline_run, paper_extract, tmp_path):
    settings, code = pipeline_run
    assert code == 0
    with (paper_extract / "truth" / "latent.csv").open(encoding="utf-8", newline="") as fh:
        cohort_mrns = sorted({r["patient_id"] for r in csv.DictReader(fh)})
    expected = set(keys_for(tmp_path / "k.duckdb", KEY_A, cohort_mrns))
    other = set(keys_for(tmp_path / "k2.duckdb", KEY_B, cohort_mrns))
    con = duckdb.connect(str(settings.publish), read_only=True)
    try:
        published = {r[0] for r in con.execute("select patient_key from marts.cohort_idds").fetchall()}
    finally:
        con.close()
    assert published and published <= expected  # a second run with the same key links
    assert not published & other  # another centre's key cannot


@pytest.mark.parametrize("short", ["", "x" * (MIN_KEY_LENGTH - 1), "  short-key  "])
def test_a_key_shorter_than_16_characters_is_refused(short, tmp_path, monkeypatch):
    settings = Settings(key_file=tmp_path / "none.key")
    monkeypatch.setenv(KEY_ENV, short)
    with pytest.raises(ConfigError):
        load_key(settings)
    monkeypatch.delenv(KEY_ENV)
    key_file = tmp_path / "short.key"
    key_file.write_text(short + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_key(Settings(key_file=key_file))


def test_the_key_comes_from_the_environment_or_the_key_file(tmp_path, monkeypatch):
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(KEY_B + "\n", encoding="utf-8")
    monkeypatch.setenv(KEY_ENV, KEY_A)
    assert load_key(Settings(key_file=key_file)) == KEY_A
    monkeypatch.delenv(KEY_ENV)
    assert load_key(Settings(key_file=key_file)) == KEY_B
    with pytest.raises(ConfigError, match=KEY_ENV):
        load_key(Settings(key_file=tmp_path / "missing.key"))


def test_the_default_key_file_lies_outside_the_repository():
    path = DEFAULT_KEY_FILE.expanduser().resolve()
    assert PROJECT_DIR.resolve() not in path.parents


def test_ensure_demo_key_creates_an_owner_only_key_file_and_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = Settings(key_file=tmp_path / "config" / "idds" / "pseudonym.key")
    ensure_demo_key(settings)
    err = capsys.readouterr().err
    assert "warning" in err.lower() and str(settings.key_file) in err
    mode = stat.S_IMODE(settings.key_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    key = load_key(settings)
    assert len(key) >= 32 and key not in err
    ensure_demo_key(settings)  # an existing key is kept, silently
    assert load_key(settings) == key
    assert capsys.readouterr().err == ""


def test_ensure_demo_key_does_nothing_when_the_environment_holds_a_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY_A)
    settings = Settings(key_file=tmp_path / "pseudonym.key")
    ensure_demo_key(settings)
    assert not settings.key_file.exists()
    assert capsys.readouterr().err == ""


def test_a_new_warehouse_file_is_owner_only(tmp_path):
    path = tmp_path / "fresh" / "warehouse.duckdb"
    with connect(path, KEY_A):
        pass
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_the_pipeline_warehouse_is_owner_only_and_the_analyst_file_has_no_identifier_column(pipeline_run):
    settings, code = pipeline_run
    assert code == 0
    assert stat.S_IMODE(settings.warehouse.stat().st_mode) & 0o077 == 0
    con = duckdb.connect(str(settings.publish), read_only=True)
    try:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database()").fetchall()
        bad = [f"{s}.{t}.{c}" for s, t, c in columns if c.lower() in IDENTIFIER_COLUMNS]
        assert bad == []
        keyed = [(s, t) for s, t, c in columns if c == "patient_key"]
        assert ("marts", "cohort_idds") in keyed
        for schema, table in keyed:
            values = con.execute(
                f"select count(*) filter (where not regexp_full_match(patient_key, 'pk_[0-9a-f]{{20}}')) "
                f"from {schema}.{table} where patient_key is not null").fetchall()[0][0]
            assert values == 0, f"{schema}.{table}"
    finally:
        con.close()
