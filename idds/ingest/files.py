"""Delivered files: discovery, manifests, hashing, decoding and record numbering."""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from idds.mapping import Mapping

CHUNK = 1 << 20


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def discover(landing: Path, mapping: Mapping) -> list[Delivery]:
    """Delivery folders in delivery order, each with its files (hashed) and manifest."""
    if not landing.is_dir():
        return []
    deliveries = []
    for folder in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith(".")):
        delivery = Delivery(delivery_id=folder.name, path=folder)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
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
            out.write("\n")
    if header_line is None:
        raise FileRefused("the file is empty (no header line)")
    header = next(csv.reader([header_line]))
    return header, records


def prepare(src: Path, dst: Path) -> Prepared:
    """Decode UTF-8 (with or without BOM) or GB18030, detected per file, to numbered UTF-8."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    candidates = ["utf-8-sig"] if _detect_bom(src) else ["utf-8", "gb18030"]
    last_error: Exception | None = None
    for encoding in candidates:
        try:
            header, records = _write_numbered(src, dst, encoding)
            return Prepared(dst, "utf-8-bom" if encoding == "utf-8-sig" else encoding, header, records)
        except UnicodeDecodeError as exc:
            last_error = exc
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise FileRefused(f"cannot be read ({exc})") from exc
    raise FileRefused(f"is neither UTF-8 nor GB18030 ({last_error})")


def check_manifest(delivery: Delivery) -> None:
    """Refuse the delivery when its manifest disagrees with the files (broken transfer)."""
    manifest = delivery.manifest
    if manifest is None:
        return
    where = f"delivery {delivery.delivery_id}"
    if "_error" in manifest:
        raise DeliveryRefused(f"{where}: {manifest['_error']}; nothing of it was loaded.")
    listed = manifest.get("files") or {}
    present = {f.path.name: f for f in delivery.files}
    for name, expected in sorted(listed.items()):
        got = present.get(name)
        if got is None:
            raise DeliveryRefused(
                f"{where}: manifest.json lists {name}, which is missing; nothing of it was loaded."
            )
        if expected.get("sha256") and expected["sha256"] != got.sha256:
            raise DeliveryRefused(
                f"{where}: {name} does not match the sha256 in manifest.json "
                "(broken transfer); nothing of it was loaded."
            )
    for name in sorted(set(present) - set(listed)):
        raise DeliveryRefused(
            f"{where}: {name} is not listed in manifest.json; nothing of it was loaded."
        )


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
