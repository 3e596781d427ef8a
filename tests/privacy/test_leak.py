"""No identifier leaves the protected zone (issue 10).

Every name, resident ID number, phone number and raw MRN of the synthetic patients is
collected from the delivered CSVs (with a small reader of our own: gzip, GB18030,
UTF-8 with or without BOM, Chinese file names and headers), then searched for in
everything a run publishes: every text column of every table of the analyst file, every
file of the reports folder (HTML, GX Data Docs, PNG metadata), the dbt artefacts and
logs, the Prefect API (flow runs, task runs and their state messages, logs, artifacts),
the Prefect database and result storage, and what a CLI run prints and logs.

Numbers are searched as whole tokens (an MRN inside a longer number is not a hit);
names as substrings, also JSON-, HTML- and URL-escaped. The pseudonymisation key is
searched for too: it must never be written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import gzip
import html
import io
import json
import logging
import os
import re
import tempfile
import time
import unicodedata
import urllib.parse
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import settings_with_landing

from idds.settings import Settings

pytestmark = pytest.mark.slow

KEY = os.environ["IDDS_PSEUDONYM_KEY"]

#: Delivered headers (English or Chinese, as in expectations/mapping.yml) of what we look for.
HEADERS = {
    "name": {"name", "姓名"},
    "id_number": {"id_number", "身份证号"},
    "phone": {"phone", "联系电话"},
    "mrn": {"patient_id", "病案号"},
}


# ------------------------------------------------------------------------------------------
# reading the deliveries
# ------------------------------------------------------------------------------------------


def decode_delivered(path: Path) -> str:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def delivered_fields(landing: Path):
    """(path, [(header, value), ...]) for every record of every delivered CSV: a header
    delivered twice (a second 姓名 column) keeps both of its values."""
    for path in sorted(landing.rglob("*")):
        if path.is_file() and (path.name.endswith(".csv") or path.name.endswith(".csv.gz")):
            reader = csv.reader(io.StringIO(decode_delivered(path), newline=""))
            header = [unicodedata.normalize("NFKC", h).strip().lower() for h in next(reader, [])]
            for row in reader:
                yield path, list(zip(header, row, strict=False))


def delivered_rows(landing: Path):
    for path, fields in delivered_fields(landing):
        yield path, dict(fields)


@dataclass
class Identifiers:
    names: set[str] = field(default_factory=set)
    id_numbers: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    mrns: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {"names": len(self.names), "id_numbers": len(self.id_numbers),
                "phones": len(self.phones), "mrns": len(self.mrns)}


def clean(value: str | None) -> str:
    return unicodedata.normalize("NFKC", value or "").strip()


#: Identifier shapes found in any column (a phone typed into sex, an ID in an unmapped column).
ID_SHAPE = re.compile(r"\d{17}[\dXx]")
PHONE_SHAPE = re.compile(r"(?:\+?86[ -]?)?(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})")


def collect_identifiers(landing: Path, truth: Path | None = None) -> Identifiers:
    ids = Identifiers()
    kind_of = {h: kind for kind, headers in HEADERS.items() for h in headers}
    for _path, fields in delivered_fields(landing):
        for h, raw in fields:
            v = clean(raw)
            if not v or v.lower() in {"null", "na", "n/a", "none", "-", "/"}:
                continue
            kind = kind_of.get(h)
            if kind == "name":
                ids.names.add(v)
            elif kind == "id_number":
                ids.id_numbers.add(v.upper())
            elif kind == "phone":
                ids.phones.add(re.sub(r"\D", "", v))
            elif kind == "mrn" and re.fullmatch(r"\d+", v):
                ids.mrns.add(v)
            elif ID_SHAPE.fullmatch(v):
                ids.id_numbers.add(v.upper())
            elif m := PHONE_SHAPE.fullmatch(v):
                ids.phones.add("".join(m.groups()))
    if truth is not None and (truth / "latent.csv").is_file():
        with (truth / "latent.csv").open(encoding="utf-8", newline="") as fh:
            ids.mrns |= {clean(r["patient_id"]) for r in csv.DictReader(fh) if clean(r["patient_id"])}
    return ids


# ------------------------------------------------------------------------------------------
# searching
# ------------------------------------------------------------------------------------------


CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


class Needles:
    """Find identifiers in text: numbers as whole tokens, names as substrings (also when
    written JSON-, HTML- or URL-escaped)."""

    def __init__(self, ids: Identifiers, extra: dict[str, str] | None = None) -> None:
        self.ids = ids
        self.numbers: dict[str, str] = {}
        for kind, values in (("mrn", ids.mrns), ("phone", ids.phones), ("id_number", ids.id_numbers)):
            for v in values:
                self.numbers[v] = kind
        # an MRN with its leading zeros dropped (cast to an integer somewhere) is a leak too
        for v in ids.mrns:
            stripped = v.lstrip("0")
            if len(stripped) >= 7 and len(set(stripped)) > 1 and stripped not in self.numbers:
                self.numbers[stripped] = "mrn (leading zeros dropped)"
        names = {n for n in ids.names if len(n) >= 2}
        self.cjk_names = {n for n in names if CJK.fullmatch(n)}
        self.other_names = names - self.cjk_names
        self.lengths = sorted({len(n) for n in self.cjk_names})
        self.extra = extra or {}

    def _names_in(self, text: str, hits: set) -> None:
        for run in CJK.findall(text):
            for size in self.lengths:
                for i in range(len(run) - size + 1):
                    if run[i:i + size] in self.cjk_names:
                        hits.add(("name", run[i:i + size]))
        for name in self.other_names:
            if name in text:
                hits.add(("name", name))

    def find(self, text: str) -> list[tuple[str, str]]:
        if not text:
            return []
        text = unicodedata.normalize("NFKC", text)
        hits: set[tuple[str, str]] = set()
        for token in re.findall(r"(?<!\d)\d{17}[\dXx](?![\dXx])", text):
            if token.upper() in self.numbers:
                hits.add((self.numbers[token.upper()], token.upper()))
        for token in re.findall(r"(?<!\d)\d+(?!\d)", text):
            if token in self.numbers:
                hits.add((self.numbers[token], token))
        forms = {text}
        if "\\u" in text:
            forms.add(JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
        if "&" in text:
            forms.add(html.unescape(text))
        if "%" in text:
            forms.add(urllib.parse.unquote(text, errors="ignore"))
        for form in forms:
            self._names_in(form, hits)
        for kind, literal in self.extra.items():
            if literal in text:
                hits.add((kind, literal[:6] + "…"))
        return sorted(hits)


def png_text(data: bytes) -> str:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG."""
    out = []
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        try:
            if kind == b"tEXt":
                out.append(body.decode("latin-1"))
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                out.append(key.decode("latin-1") + " " + zlib.decompress(rest[1:]).decode("latin-1"))
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b"\0")
                _tkey, _, text = rest.partition(b"\0")
                out.append(key.decode("latin-1") + " "
                           + (zlib.decompress(text) if compressed else text).decode("utf-8", "replace"))
        except (zlib.error, IndexError):
            continue
        if kind == b"IEND":
            break
    return "\n".join(out)


DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=]+)")


def file_text(path: Path) -> str:
    """Everything readable in a file: its text, PNG metadata, embedded PNGs, base64 payloads."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    parts = [data.decode("utf-8", "ignore")]
    if data.startswith(b"\x89PNG"):
        parts.append(png_text(data))
    for m in DATA_URI.finditer(data):
        with contextlib.suppress(binascii.Error, ValueError):
            parts.append(png_text(base64.b64decode(m.group(1))))
    stripped = data.strip()
    if stripped and re.fullmatch(rb"[A-Za-z0-9+/=\s]+", stripped) and len(stripped) % 4 == 0:
        with contextlib.suppress(binascii.Error, ValueError):
            parts.append(base64.b64decode(stripped).decode("utf-8", "ignore"))  # pickled results
    return "\n".join(parts)


def search_files(needles: Needles, paths, since: float | None = None) -> dict[str, list]:
    found: dict[str, list] = {}
    for path in paths:
        if not path.is_file() or (since is not None and path.stat().st_mtime < since):
            continue
        hits = needles.find(file_text(path))
        if hits:
            found[str(path)] = hits[:5]
    return found


def files_under(*roots: Path):
    for root in roots:
        if root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file())


def search_duckdb(needles: Needles, path: Path, exclude: set[str] = frozenset()) -> dict[str, list]:
    """Every VARCHAR / JSON (and list or struct, as text) column of every table."""
    found: dict[str, list] = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_catalog = current_database() order by all").fetchall()
        for schema, table, column, dtype in columns:
            where = f"{schema}.{table}.{column}"
            if f"{schema}.{table}" in exclude or where in exclude:
                continue
            if not any(t in dtype.upper() for t in ("VARCHAR", "JSON", "[]", "STRUCT", "MAP")):
                continue
            q = '"' + column.replace('"', '""') + '"'
            values = con.execute(f'select distinct cast({q} as varchar) from "{schema}"."{table}" '
                                 f"where {q} is not null").fetchall()
            hits = needles.find("\n".join(v[0] for v in values))
            if hits:
                found[where] = hits[:5]
        # table and column names too
        names = "\n".join(f"{s}.{t}.{c}" for s, t, c, _ in columns)
        if hits := needles.find(names):
            found["(table and column names)"] = hits
    finally:
        con.close()
    return found


def run_started(analyst: Path) -> float:
    con = duckdb.connect(str(analyst), read_only=True)
    try:
        started = con.execute("select min(started_at) from dq.dq_run").fetchall()[0][0]
    finally:
        con.close()
    return (started.timestamp() if isinstance(started, datetime) else time.time()) - 5


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identifiers(paper_extract) -> Identifiers:
    ids = collect_identifiers(paper_extract / "landing", paper_extract / "truth")
    counts = ids.counts()
    # the paper profile: 384 patients in the extract, each with a name, ID number and phone
    assert counts["mrns"] >= 384 and counts["names"] >= 300 and counts["id_numbers"] >= 384 \
        and counts["phones"] >= 384, counts
    return ids


@pytest.fixture(scope="module")
def needles(identifiers) -> Needles:
    return Needles(identifiers, extra={"pseudonymisation key": KEY})


@pytest.fixture(scope="module")
def run(pipeline_run):
    settings, code = pipeline_run
    assert code == 0, "the pipeline run over the paper extract failed"
    return settings


class CapturedRun:
    def __init__(self, root: Path, settings: Settings, code: int, output: str, log: str, ids: Identifiers):
        self.root, self.settings, self.code, self.output, self.log, self.ids = root, settings, code, output, log, ids

    @property
    def work(self) -> Path:
        # the flow's work folder: beside the warehouse the CLI names
        return self.settings.warehouse.parent / "work"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.records.append(self.format(record))


@contextlib.contextmanager
def capture_process_output():
    """What the process writes to fds 1 and 2 (C level, subprocesses that inherit them,
    print) and every log record (Prefect's console handler keeps the stream it was
    created with, so records are captured at the loggers as well)."""
    out = {"output": "", "log": ""}
    handler = _ListHandler()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.propagate]
    for lg in loggers:
        lg.addHandler(handler)
    sink = tempfile.TemporaryFile(mode="w+b")
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    buf_out, buf_err = io.StringIO(), io.StringIO()
    try:
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
            yield out
    finally:
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        for lg in loggers:
            lg.removeHandler(handler)
        sink.seek(0)
        out["output"] = buf_out.getvalue() + buf_err.getvalue() + sink.read().decode("utf-8", "replace")
        out["log"] = "\n".join(handler.records)
        sink.close()


@pytest.fixture(scope="module")
def dirty_run(prefect_harness, tmp_path_factory) -> CapturedRun:
    """A fresh `idds run` (idds.cli.main) over a dirty synthetic extract (quarantined rows,
    so masking is exercised), in its own working directory, its output captured."""
    from idds.cli import main
    from synth import generate

    root = tmp_path_factory.mktemp("leak-dirty")
    generate(root / "extract", seed=11, profile="paper", deliveries=1, dirty=True)
    settings = settings_with_landing(root, root / "extract" / "landing")
    ids = collect_identifiers(settings.landing, root / "extract" / "truth")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("IDDS_WORK", raising=False)
        with capture_process_output() as captured:
            code = main(["run", "--landing", str(settings.landing), "--warehouse", str(settings.warehouse),
                         "--publish", str(settings.publish), "--reports", str(settings.reports)])
    return CapturedRun(root, settings, code, captured["output"], captured["log"], ids)


@pytest.fixture(scope="module")
def dirty_needles(dirty_run) -> Needles:
    return Needles(dirty_run.ids, extra={"pseudonymisation key": KEY})


# ------------------------------------------------------------------------------------------
# the clean paper extract (session run)
# ------------------------------------------------------------------------------------------


def test_identifiers_are_collected_from_every_delivered_file(identifiers, paper_extract):
    names = {p.name for p, _ in delivered_rows(paper_extract / "landing")}
    assert any(n.endswith(".gz") for n in names) and any(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    needles = Needles(identifiers)
    some_mrn = sorted(identifiers.mrns)[0]
    some_name = sorted(identifiers.names)[0]
    assert needles.find(f"x {some_mrn} y") == [("mrn", some_mrn)]
    assert needles.find(f"9{some_mrn}9") == []  # inside a longer number: not a token
    assert ("name", some_name) in needles.find(json.dumps({"n": some_name}))  # \u-escaped
    assert ("name", some_name) in needles.find("".join(f"&#{ord(c)};" for c in some_name))
    assert ("name", some_name) in needles.find(urllib.parse.quote(some_name))


def test_the_search_finds_identifiers_where_they_are_allowed(run, needles):
    """Positive control: the same search does find them in the deliveries and in the
    warehouse's raw tables (the protected zone)."""
    delivered = search_files(needles, files_under(run.landing))
    assert any(p.endswith(".gz") for p in delivered) and len(delivered) >= 10
    patients = next(p for p in files_under(run.landing) if p.name in ("patients.csv", "患者信息.csv"))
    assert {kind for kind, _ in needles.find(file_text(patients))} == {"mrn", "name", "id_number", "phone"}
    raw = search_duckdb(needles, run.warehouse)
    assert {"raw.patients.name", "raw.patients.id_number", "raw.patients.phone",
            "raw.patients.patient_id"} <= set(raw)
    assert all(where.startswith(("raw.", "dq.")) for where in raw), sorted(raw)


def test_the_analyst_file_holds_no_identifier(run, needles):
    assert search_duckdb(needles, run.publish) == {}


def test_reports_and_data_docs_hold_no_identifier(run, needles):
    files = list(files_under(run.reports))
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".png" for p in files)
    assert any("data_docs" in p.parts for p in files)
    assert search_files(needles, files) == {}


def test_dbt_artefacts_and_logs_hold_no_identifier(run, needles):
    # the flow builds its settings from the environment, so dbt writes under the work
    # folder of the working directory; the fixture's own work folder is searched too
    since = run_started(run.publish)
    roots = []
    for work in {run.work.resolve(), Settings().work.resolve()}:
        roots += [work / "dbt-target", work / "dbt-logs", work / "gx"]
    files = list(files_under(*roots))
    assert any(p.name == "manifest.json" for p in files), "no dbt artefacts found"
    assert search_files(needles, files, since=since) == {}


def prefect_texts() -> dict[str, str]:
    """Flow runs, task runs (with their states), logs and artifacts from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    with contextlib.suppress(Exception):
        APILogHandler.flush()
    texts: dict[str, list[str]] = {"flow_runs": [], "task_runs": [], "logs": [], "artifacts": []}

    def pages(read):
        offset = 0
        while True:
            batch = read(limit=200, offset=offset)
            yield from batch
            if len(batch) < 200:
                return
            offset += 200

    with get_client(sync_client=True) as client:
        for fr in pages(client.read_flow_runs):
            texts["flow_runs"].append(fr.model_dump_json())
            for state in client.read_flow_run_states(fr.id):
                texts["flow_runs"].append(state.model_dump_json())
        for tr in pages(client.read_task_runs):
            texts["task_runs"].append(tr.model_dump_json())
        for log in pages(client.read_logs):
            texts["logs"].append(log.model_dump_json())
        for art in pages(client.read_artifacts):
            texts["artifacts"].append(art.model_dump_json())
    return {k: "\n".join(v) for k, v in texts.items()}


def test_prefect_runs_logs_and_artifacts_hold_no_identifier(run, dirty_run, needles, dirty_needles):
    texts = prefect_texts()
    assert "registry-pipeline" in texts["flow_runs"] or texts["flow_runs"]
    assert texts["logs"], "the Prefect API holds no log of the runs"
    found = {}
    for what, text in texts.items():
        for n in (needles, dirty_needles):
            if hits := n.find(text):
                found[what] = hits[:5]
    assert found == {}


def test_prefect_database_and_result_storage_hold_no_identifier(run, dirty_run, needles, dirty_needles):
    import prefect.settings as ps

    since = run_started(run.publish)
    paths = []
    url = str(ps.PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    if url.startswith("sqlite"):
        db = Path(url.split("///", 1)[-1])
        paths += [p for p in db.parent.glob(db.name + "*")]  # with -wal / -shm
    storage = Path(str(ps.PREFECT_LOCAL_STORAGE_PATH.value())).expanduser()
    paths += list(files_under(storage))
    found = {}
    for n in (needles, dirty_needles):
        found.update(search_files(n, paths, since=since))
    assert found == {}


# ------------------------------------------------------------------------------------------
# a fresh CLI run over a dirty extract (quarantined rows)
# ------------------------------------------------------------------------------------------


def test_a_cli_run_prints_and_logs_no_identifier(dirty_run, dirty_needles):
    assert dirty_run.code == 0, dirty_run.output[-2000:]
    assert "analyst file:" in dirty_run.output
    assert "Finished in state" in dirty_run.log  # Prefect's records were captured
    assert dirty_needles.find(dirty_run.output) == []
    assert dirty_needles.find(dirty_run.log) == []


def test_the_dirty_run_quarantined_patient_rows(dirty_run):
    con = duckdb.connect(str(dirty_run.settings.publish), read_only=True)
    try:
        stems = {r[0] for r in con.execute("select distinct file_stem from dq.quarantine").fetchall()}
    finally:
        con.close()
    assert "patients" in stems  # so the next two tests search masked patient rows


def test_the_dirty_run_analyst_file_outside_quarantine_holds_no_identifier(dirty_run, dirty_needles):
    assert search_duckdb(dirty_needles, dirty_run.settings.publish, exclude={"dq.quarantine"}) == {}


def test_the_published_quarantine_holds_no_identifier(dirty_run, dirty_needles):
    con = duckdb.connect(str(dirty_run.settings.publish), read_only=True)
    try:
        rows = con.execute("select * from dq.quarantine").fetchall()
    finally:
        con.close()
    assert rows
    assert dirty_needles.find(repr(rows)) == []


def test_the_dirty_run_reports_hold_no_identifier(dirty_run, dirty_needles):
    files = list(files_under(dirty_run.settings.reports))
    assert any(p.name == "validation.html" for p in files)
    assert search_files(dirty_needles, files) == {}


def test_the_dirty_run_dbt_and_gx_artefacts_hold_no_identifier(dirty_run, dirty_needles):
    work = dirty_run.work
    files = list(files_under(work / "dbt-target", work / "dbt-logs", work / "gx"))
    assert any(p.name == "run_results.json" for p in files)
    assert search_files(dirty_needles, files) == {}


def test_no_identifier_is_left_in_the_work_folder(dirty_run, dirty_needles):
    """Ingestion decodes each delivered file into a working copy under <work>/ingest/<run_id>/;
    the warehouse is the only place identifiers may stay, so the copies must be gone."""
    leftovers = search_files(dirty_needles, files_under(dirty_run.work))
    assert leftovers == {}
