"""Delivered files: discovery, manifests, hashing, decoding and record numbering."""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from idds.mapping import Mapping

CHUNK = 1 << 20
MAX_LINE_SIZE = 10_000_000  # DuckDB's limit for one record of the numbered copy (prefix included)


class DeliveryRefused(Exception):
    """The whole delivery is refused (broken transfer); nothing of it is loaded."""


class FileRefused(Exception):
    """One file cannot be read as the contract allows (encoding, header)."""


@dataclass
class DeliveredFile:
    path: Path
    stem: str | None  # canonical file name, None when the name matches no contract file
    sha256: str = ""


@dataclass
class Delivery:
    delivery_id: str
    path: Path
    files: list[DeliveredFile] = field(default_factory=list)
    manifest: dict | None = None
    links: list[str] = field(default_factory=list)  # symbolic links found (never followed)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def discover(landing: Path, mapping: Mapping) -> list[Delivery]:
    """Delivery folders in delivery order, each with its files (hashed) and manifest.

    Only regular files in real folders under the landing folder are ever opened: a
    symbolic link (a delivery folder, or a file in one) is recorded in ``links`` and
    refuses its delivery (see :func:`check_regular_files`), never followed."""
    if not landing.is_dir():
        return []
    deliveries = []
    for folder in sorted(p for p in landing.iterdir()
                         if (p.is_dir() or p.is_symlink()) and not p.name.startswith(".")):
        delivery = Delivery(delivery_id=folder.name, path=folder)
        if folder.is_symlink():
            delivery.links.append(folder.name)
            deliveries.append(delivery)
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_symlink():
                delivery.links.append(path.name)
                continue
            if not path.is_file():
                continue
            if path.name == "manifest.json":
                try:
                    delivery.manifest = json.loads(path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError) as exc:
                    delivery.manifest = {"_error": f"manifest.json is not valid JSON ({exc})"}
                continue
            delivery.files.append(DeliveredFile(path, mapping.file_for(path.name), sha256_of(path)))
        deliveries.append(delivery)
    return deliveries


def ready(deliveries: list[Delivery], quiet_seconds: float) -> tuple[list[Delivery], str | None]:
    """The deliveries to take in now, in order, and why the others wait: a delivery
    without a manifest (nothing tells that it is complete) whose newest file changed less
    than ``quiet_seconds`` ago may still be being copied; it, and every later delivery,
    waits for a later run."""
    now = time.time()
    for index, delivery in enumerate(deliveries):
        if delivery.manifest is not None or quiet_seconds <= 0 or not delivery.path.is_dir():
            continue
        paths = [delivery.path, *delivery.path.iterdir()]
        newest = max(paths, key=lambda p: p.lstat().st_mtime)
        age = now - newest.lstat().st_mtime
        if age < quiet_seconds:
            later = [d.delivery_id for d in deliveries[index + 1:]]
            return deliveries[:index], (
                f"delivery {delivery.delivery_id} has no manifest and {newest.name} changed {age:.0f} s ago: "
                f"it may still be being copied, so it waits until it has been quiet for {quiet_seconds:.0f} s "
                "(IDDS_QUIET_SECONDS)" + (f"; {', '.join(later)} wait with it" if later else "") + ".")
    return deliveries, None


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _detect_bom(path: Path) -> bool:
    with _open_bytes(path) as fh:
        return fh.read(3) == codecs.BOM_UTF8


@dataclass
class Prepared:
    """A delivered file as UTF-8 with each record prefixed by its physical line number."""

    path: Path
    encoding: str
    header: list[str]
    records: int  # data records, the header excluded; a multi-line quoted note is one


def _ends_inside_quotes(line: str, inside: bool) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of this line.

    Lenient RFC 4180, as common CSV readers (Python's csv, DuckDB) resynchronise: a quote
    that closes a quoted field and is followed by other text ends the quoting.
    """
    START, FIELD, QUOTED, QUOTE_IN_QUOTED = 0, 1, 2, 3
    state = QUOTED if inside else START
    for ch in line:
        if state == QUOTED:
            if ch == '"':
                state = QUOTE_IN_QUOTED
        elif state == QUOTE_IN_QUOTED:
            state = QUOTED if ch == '"' else (START if ch == "," else FIELD)
        elif ch == ",":
            state = START
        elif state == START and ch == '"':
            state = QUOTED
        elif ch not in "\r\n":
            state = FIELD
    return state == QUOTED


def _write_numbered(src: Path, dst: Path, encoding: str) -> tuple[list[str], int]:
    """Decode ``src`` and write ``dst``: header prefixed ``_line_number``, records by line."""
    records = 0
    inside_quotes = False
    header_line = None
    line = ""
    with _open_bytes(src) as raw, dst.open("w", encoding="utf-8", newline="") as out:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
        for lineno, line in enumerate(text, start=1):
            if not inside_quotes:
                if not line.strip():
                    continue  # a blank line between records is not a record
                if header_line is None:
                    header_line = line
                    out.write("_line_number,")
                else:
                    records += 1
                    out.write(f"{lineno},")
            out.write(line)
            if inside_quotes or '"' in line:
                inside_quotes = _ends_inside_quotes(line, inside_quotes)
        if header_line is not None and not line.endswith(("\n", "\r")):
            # end the last record as the file ends its lines (a lone LF in a CRLF file
            # would make the CSV reader fail on the whole file)
            out.write("\r\n" if header_line.endswith("\r\n") else "\n")
    if header_line is None:
        raise FileRefused("is empty: it has no header line")
    header = next(csv.reader([header_line]))
    return header, records


def _utf8_lines(src: Path) -> tuple[int, int, int, int]:
    """(byte, line) of the first byte that is not UTF-8, and how many physical lines with
    non-ASCII bytes are valid UTF-8 and how many are not (bytes of the decompressed
    content for a .gz)."""
    first = (-1, -1)
    good = bad = 0
    offset = 0
    with _open_bytes(src) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.isascii():
                try:
                    line.decode("utf-8")
                    good += 1
                except UnicodeDecodeError as exc:
                    bad += 1
                    if first[0] < 0:
                        first = (offset + exc.start, number)
            offset += len(line)
    return first[0], first[1], good, bad


def prepare(src: Path, dst: Path) -> Prepared:
    """Decode UTF-8 (with or without BOM) or GB18030, detected per file, to numbered UTF-8.

    A file is never decoded as another encoding than the one most of it is in: a UTF-8
    file with a few lines in another encoding is refused, naming the first such line and
    byte (its delivery waits for a corrected one), not read as GB18030.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    bom = _detect_bom(src)
    try:
        header, records = _write_numbered(src, dst, "utf-8-sig" if bom else "utf-8")
        return Prepared(dst, "utf-8-bom" if bom else "utf-8", header, records)
    except UnicodeDecodeError:
        pass
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FileRefused(f"cannot be read ({exc})") from exc
    byte, line, good, bad = _utf8_lines(src)
    where = f"byte {byte} (line {line})"
    if bom or good >= bad:
        raise FileRefused(
            f"is UTF-8 but not valid UTF-8 at {where}: {bad} of its {good + bad} lines with non-ASCII text "
            "are in another encoding")
    try:
        header, records = _write_numbered(src, dst, "gb18030")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"is neither UTF-8 (not valid at {where}) nor GB18030 ({exc.reason})") from exc
    return Prepared(dst, "gb18030", header, records)


# --- The direct read: DuckDB reads a UTF-8 file as delivered, numbered as prepare() would. ---
#
# prepare() costs a Python pass over every line. For the common file (UTF-8 with or without
# BOM, plain or gzip, LF or CRLF throughout, no blank line) DuckDB reads the delivered bytes
# itself (scan_direct, then read_direct), in parallel and in file order, and record i
# (1-based) starts on physical line 1 + i + (line breaks inside the values of records
# 1 .. i-1). That is prepare()'s number when DuckDB splits the file into the records that
# _ends_inside_quotes sees: with no rejected record, the two differ only where DuckDB opens
# a quote after spaces (_quote_after_spaces), and such a file is left to prepare(). A blank
# line, which DuckDB skips silently, or any other line that no record accounts for, shows in
# the physical line count. DuckDB's UTF-8 check is Python's (a test compares them). DuckDB
# never meets a gzip stream (its reader takes fewer archives and not the same errors: the
# scan decompresses to a copy), nor a mixed line ending, which would make it raise and abort
# the delivery's transaction where the numbered copy would not. Whatever is not proved
# exact goes to prepare(), which then does everything as before.

DIRECT_ENV = "IDDS_DIRECT_READ"  # "0": always take prepare()'s decoding pass
# the numbered copy prefixes each record with "<line number>,": a record that DuckDB accepts
# read directly must also fit max_line_size with that prefix
_PREFIX_ROOM = 32
_GLOB_CHARS = frozenset("*?[]{}")  # read_csv would expand the path as a glob


@dataclass
class Direct:
    """A delivered file that DuckDB can read as it is, and what the scan learnt of it."""

    path: Path  # what DuckDB reads: the delivered file, or the decompressed copy of a .gz
    encoding: str  # "utf-8" or "utf-8-bom"
    header: list[str]
    lines: int  # physical lines, as prepare() numbers them
    quoted: bool  # a '"' after the header line: a record may then span lines


def direct_enabled() -> bool:
    return os.environ.get(DIRECT_ENV, "1") != "0"


def _end_of_text(data: bytes) -> int:
    """The length of ``data`` without its trailing spaces and quotes."""
    k = len(data)
    while k and data[k - 1] in (0x20, 0x22):
        k -= 1
    return k


def _quote_after_spaces(buf: bytes, starts_field: bool, final: bool) -> bool:
    """Whether ``buf`` may hold a quote that DuckDB opens and _ends_inside_quotes does not.

    DuckDB skips spaces at the start of a field, and after the quote that closes a field,
    and then opens a quote (`` "a"``, ``"a" "b"``); _ends_inside_quotes only opens at the
    start of a field and takes text after a closing quote as unquoted. So: spaces after ',',
    a line break, '"' or the start of ``buf`` (when ``starts_field``), then an odd run of
    quotes (an even run opens and closes an empty quote: no line break or ',' inside it).
    A run that reaches the end of ``buf`` is left for the next bytes, unless ``final``.
    """
    # each ' "': found from the quotes when they are few (one search for a byte is faster)
    sparse = buf.count(b'"') * 256 < len(buf)
    i = buf.find(b'"', 1) - 1 if sparse else buf.find(b' "')
    while i >= 0:
        if buf[i] == 0x20:
            j = i
            while j >= 0 and buf[j] == 0x20:
                j -= 1
            if (buf[j] in b',\r\n"') if j >= 0 else starts_field:
                k = i + 1
                while k < len(buf) and buf[k] == 0x22:
                    k += 1
                if (k - i - 1) % 2 and (final or k < len(buf)):
                    return True
        i = buf.find(b'"', i + 2) - 1 if sparse else buf.find(b' "', i + 1)
    return False


def _scan(raw, out) -> tuple[str, list[str], int, int, int] | None:
    """Read ``raw`` to its end at C speed (no per-line Python), copying it to ``out`` when
    given; (encoding, header, physical lines, quotes and commas after the header), or None
    when DuckDB may not read these bytes directly."""
    buf = raw.read(CHUNK)
    while b"\n" not in buf and len(buf) < MAX_LINE_SIZE:
        more = raw.read(CHUNK)
        if not more:
            break
        buf += more
    if out is not None:
        out.write(buf)
    try:
        return _check(buf, raw, out)
    finally:
        if out is not None:
            shutil.copyfileobj(raw, out, CHUNK)  # the rest, when the checks stopped early


def _check(buf: bytes, raw, out) -> tuple[str, list[str], int, int, int] | None:
    bom = buf.startswith(codecs.BOM_UTF8)
    start = len(codecs.BOM_UTF8) if bom else 0
    end = buf.find(b"\n", start) + 1 or len(buf)
    if end - start > MAX_LINE_SIZE - _PREFIX_ROOM:
        return None
    try:
        header_line = buf[start:end].decode("utf-8")
        # not UTF-8 early on (a GB18030 file): no DuckDB pass that would be thrown away
        codecs.getincrementaldecoder("utf-8")().decode(buf[end:], final=False)
    except UnicodeDecodeError:
        return None
    if not header_line.strip() or _ends_inside_quotes(header_line, False):
        return None  # blank first line(s) or a header over lines: prepare() sorts it out
    if bom and header_line.startswith('"'):
        return None  # DuckDB takes the BOM as part of the first field, so not as its quote
    crlf = header_line.endswith("\r\n")
    header = next(csv.reader([header_line]))
    lf = cr = crlf_pairs = 0
    quotes, commas = -header_line.count('"'), -header_line.count(",")
    # the bytes seen so far end with ``tail``: its first byte, then spaces and quotes (all of
    # the bytes seen when ``at_start``), looked at again with the next bytes
    tail, at_start = b"", True
    prev_cr = False
    last = b""
    data = buf[start:]
    while data:
        lf += data.count(b"\n")
        commas += data.count(b",")
        if prev_cr and data[0] == 0x0A:
            crlf_pairs += 1  # a CRLF across two chunks
        if b"\r" in data:
            if not crlf:
                return None  # a CR in an LF file
            cr += data.count(b"\r")
            crlf_pairs += data.count(b"\r\n")
        prev_cr = data[-1] == 0x0D
        if b'"' in data:
            quotes += data.count(b'"')
        if b'"' in data or b'"' in tail:
            if _quote_after_spaces(tail + data, at_start, final=False):
                return None
        k = _end_of_text(data)
        if k:
            tail, at_start = data[k - 1:], False
        else:
            tail += data
        last = data[-2:] if len(data) > 1 else (last + data)[-2:]
        data = raw.read(CHUNK)
        if out is not None:
            out.write(data)
    if _quote_after_spaces(tail, at_start, final=True):
        return None
    if crlf:
        # CRLF throughout, the last line included (the numbered copy would end the last
        # line with a lone LF, which DuckDB refuses in a CRLF file: prepare() keeps that)
        if not (cr == crlf_pairs == lf and last == b"\r\n"):
            return None
    lines = lf + (0 if last.endswith(b"\n") else 1)
    return ("utf-8-bom" if bom else "utf-8"), header, lines, quotes, commas


def scan_direct(src: Path, copy: Path) -> tuple[Path, Direct | None]:
    """The file that holds the delivered bytes, and a :class:`Direct` when DuckDB may read
    them as they are (None: take prepare(), on that file).

    A ``.gz`` file is decompressed by Python (as prepare() reads it) to ``copy``, which is
    then that file: DuckDB's gzip reader accepts fewer archives, and not the same errors.
    """
    if not direct_enabled():
        return src, None
    gz = src.name.lower().endswith(".gz")
    try:
        if gz:
            copy.parent.mkdir(parents=True, exist_ok=True)
            with _open_bytes(src) as raw, copy.open("wb") as out:
                scanned = _scan(raw, out)
        else:
            with _open_bytes(src) as raw:
                scanned = _scan(raw, None)
    except Exception:  # noqa: BLE001 - unreadable here: prepare() reports it as it always did
        if gz:
            copy.unlink(missing_ok=True)
        return src, None
    source = copy if gz else src
    if scanned is None or _GLOB_CHARS & set(str(source)):
        return source, None
    encoding, header, lines, quotes, commas = scanned
    if not _looks_well_formed(len(header), lines, quotes, commas):
        return source, None
    return source, Direct(source, encoding, header, lines, quotes > 0)


def _looks_well_formed(columns: int, lines: int, quotes: int, commas: int) -> bool:
    """Whether no record seems malformed (too few or many fields, a quote left open): one
    would make DuckDB reject it, and the direct read be thrown away (a guess only, which
    read_direct() does not rely on)."""
    if quotes:
        return quotes % 2 == 0
    return commas == (columns - 1) * (lines - 1)


def _sql_lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_id(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def read_csv_sql(path: Path, columns: list[str], max_line_size: int = MAX_LINE_SIZE, extra: str = "") -> str:
    """The ``read_csv`` of a delivered file's records: every column VARCHAR, strict, the
    malformed records to temp table ``_rej``."""
    columns_sql = ", ".join(f"{_sql_lit(c)}: 'VARCHAR'" for c in columns)
    return (
        f"read_csv({_sql_lit(str(path))}, header=true, delim=',', quote='\"', escape='\"', "
        f"auto_detect=false, strict_mode=true, null_padding=false, columns={{{columns_sql}}}, "
        f"store_rejects=true, rejects_table='_rej', rejects_scan='_rej_scan', "
        f"max_line_size={max_line_size}{extra})"
    )


def read_direct(con, direct: Direct, columns: list[str]) -> int | None:
    """Create temp table ``_load`` (``_line_number`` then ``columns``, all VARCHAR) from a
    scanned file, as it would be read from prepare()'s numbered copy; and the record count.

    None, with no ``_load`` left, when the result is not proved identical: a rejected
    record, or physical lines that the records do not account for (a blank line).
    """
    con.execute("drop table if exists _rej; drop table if exists _rej_scan; drop table if exists _load")
    if len(columns) < 2:
        return None  # a one-column file: a whitespace line would be a record, not blank
    source = read_csv_sql(direct.path, columns, MAX_LINE_SIZE - _PREFIX_ROOM,
                          ", rejects_limit=1, compression='none'")
    # read in parallel, in file order (the preserved insertion order): the rowids of one
    # insert follow the records without gaps, and number them
    keep_order = con.execute("select current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("set preserve_insertion_order = true")
    try:
        con.execute(f"create temp table _load as select null::varchar as _line_number, * from {source}")
    finally:
        try:
            con.execute(f"set preserve_insertion_order = {'true' if keep_order else 'false'}")
        except Exception:  # noqa: BLE001 - an aborted transaction: the caller's error wins
            pass
    records, first, last = con.execute("select count(*), min(rowid), max(rowid) from _load").fetchall()[0]
    exact = con.execute("select count(*) from _rej").fetchall()[0][0] == 0 and (
        records == 0 or last - first + 1 == records)
    update = f"update _load set _line_number = cast(rowid - {first} + 2 as varchar)"  # a record a line
    if exact and records + 1 != direct.lines:
        # records over several lines (or a blank line): the line breaks inside the values
        # of the records before each one, added up over the few records that hold any
        exact = direct.quoted and records + 1 < direct.lines
        if exact:
            breaks = " + ".join(
                f"(case when contains({_sql_id(c)}, chr(10)) then "
                f"strlen({_sql_id(c)}) - strlen(replace({_sql_id(c)}, chr(10), '')) else 0 end)"
                for c in columns)
            con.execute(
                f"create or replace temp table _line_breaks as select rowid as _rid, sum({breaks}) "
                f"over (order by rowid) as _before_next from _load where "
                + " or ".join(f"contains({_sql_id(c)}, chr(10))" for c in columns))
            total = con.execute("select coalesce(max(_before_next), 0) from _line_breaks").fetchall()[0][0]
            exact = records + 1 + total == direct.lines
            update = (
                f"update _load set _line_number = cast(_load.rowid - {first} + 2 + coalesce(x._before, 0) "
                "as varchar) from (select l.rowid as _r, b._before_next as _before from _load l "
                "asof left join _line_breaks b on l.rowid > b._rid) x where _load.rowid = x._r")
    if exact and records:
        con.execute(update)
    con.execute("drop table if exists _line_breaks")
    if not exact:
        con.execute("drop table if exists _rej; drop table if exists _rej_scan; drop table if exists _load")
        return None
    return records


def numbered_path(copy: Path) -> Path:
    """Where prepare() writes its numbered copy, beside the decompressed ``copy``."""
    return copy.with_name(copy.stem + ".numbered.csv")


def count_records(con, src: Path, copy: Path) -> int:
    """The record count prepare() would give (for a file that is not loaded again)."""
    source, direct = scan_direct(src, copy)
    try:
        if direct is not None:
            records = read_direct(con, direct, [f"c{i}" for i in range(len(direct.header))])
            con.execute("drop table if exists _rej; drop table if exists _rej_scan; drop table if exists _load")
            if records is not None:
                return records
        try:
            return prepare(source, numbered_path(copy)).records
        except FileRefused:
            if source == src:
                raise
            # refused all the same, but with the decoder's message as read from the .gz
            return prepare(src, numbered_path(copy)).records
    finally:
        if source != src:
            source.unlink(missing_ok=True)


def check_manifest(delivery: Delivery) -> None:
    """Refuse the delivery when it holds a symbolic link, or when its manifest disagrees
    with the files (broken transfer); the message names every offending file."""
    where = f"delivery {delivery.delivery_id}"
    problems = [f"{name} is a symbolic link (only regular files are read; it was not followed)"
                for name in delivery.links]
    manifest = delivery.manifest
    if manifest is not None and "_error" in manifest:
        problems.append(manifest["_error"])
    elif manifest is not None:
        listed = manifest.get("files") or {}
        present = {f.path.name: f for f in delivery.files}
        for name, expected in sorted(listed.items()):
            got = present.get(name)
            if got is None:
                problems.append(f"manifest.json lists {name}, which is missing")
            elif expected.get("sha256") and expected["sha256"] != got.sha256:
                problems.append(f"{name} does not match the sha256 in manifest.json (broken transfer)")
        problems += [f"{name} is not listed in manifest.json" for name in sorted(set(present) - set(listed))]
    if problems:
        raise DeliveryRefused(f"{where}: " + "; ".join(problems) + "; nothing of it was loaded.")


def check_manifest_rows(delivery: Delivery, file: DeliveredFile, records: int) -> None:
    """Refuse the delivery when a file's record count disagrees with the manifest."""
    if not delivery.manifest:
        return
    expected = (delivery.manifest.get("files") or {}).get(file.path.name, {}).get("rows")
    if expected is not None and int(expected) != records:
        raise DeliveryRefused(
            f"delivery {delivery.delivery_id}: {file.path.name} holds {records} records but "
            f"manifest.json says {expected} (broken transfer); nothing of it was loaded."
        )
