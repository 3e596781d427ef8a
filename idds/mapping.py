"""The hospital mapping file (expectations/mapping.yml): file names, header aliases, enums."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

# Full-width forms that hospitals type into numeric and date fields, folded to ASCII.
FULLWIDTH = "０１２３４５６７８９．，－／：＋（）　"
ASCII = "0123456789.,-/:+() "


def fold(text: str) -> str:
    """Case-fold, trim and fold full-width characters, for matching names and labels."""
    return unicodedata.normalize("NFKC", text).strip().lower()


@dataclass(frozen=True)
class Mapping:
    missing_tokens: tuple[str, ...]
    files: dict[str, dict]
    enums: dict[str, dict[str, list[str]]]
    identifier_patterns: tuple[dict, ...] = ()

    def file_for(self, filename: str) -> str | None:
        """Canonical file stem for a delivered file name (English or alias, .csv/.csv.gz)."""
        name = fold(filename)
        for suffix in (".csv.gz", ".csv"):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                break
        else:
            return None
        for canonical, spec in self.files.items():
            if stem == canonical or stem in {fold(a) for a in spec.get("aliases", [])}:
                return canonical
        return None

    def header_map(self, file: str) -> dict[str, str]:
        """Folded header text -> canonical column for one file."""
        out: dict[str, str] = {}
        for column, aliases in self.files[file]["columns"].items():
            out[fold(column)] = column
            for alias in aliases:
                out[fold(alias)] = column
        return out

    def columns(self, file: str) -> list[str]:
        return list(self.files[file]["columns"])

    def enum_pairs(self) -> list[tuple[str, str, str]]:
        """(domain, folded label, code) for every code and label of every domain."""
        pairs = []
        for domain, codes in self.enums.items():
            for code, labels in codes.items():
                for label in [code, *labels]:
                    pairs.append((domain, fold(str(label)), str(code)))
        return pairs


@cache
def load_mapping(path: str | None = None) -> Mapping:
    """Read the mapping file (default: the one shipped in expectations/)."""
    if path is None:
        text = resources.files("expectations").joinpath("mapping.yml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return Mapping(
        missing_tokens=tuple(str(t) for t in raw["missing_tokens"]),
        files=raw["files"],
        enums={d: {str(k): [str(x) for x in v] for k, v in codes.items()} for d, codes in raw["enums"].items()},
        identifier_patterns=tuple(dict(p) for p in raw.get("identifier_patterns") or ()),
    )
