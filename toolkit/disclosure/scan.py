"""Find small counts in study outputs: the check behind "no count between 1 and k-1 anywhere".

What counts as a *count* (a number of persons or events), and so may not be 1..k-1:

* in JSON (results.json, MLflow params and metrics files): a number under a key that names
  persons or events (:data:`COUNT_NAMES`: ``n``, ``events``, ``n_risk``, ``removed``,
  ``missing``, ``cohort_size`` ...), including every value of a mapping held under such a key
  (Table 1's ``counts`` and ``missing`` per group);
* in CSV files: the values of columns with such names;
* in text (HTML reports, model cards, warnings inside results.json): a number followed by a
  word for persons or events (``3 persons``, ``− 4 excluded``, ``5 rows with missing values``),
  ``n = 4``, a number before a percentage (``4 (2.1%)``), and numbers in table columns headed
  by such a word (``n``, ``events``, ``at risk``).

Not counts: times and days, ages and years, risks, rates and percentages, coefficients,
p-values, identifiers and versions.  A count of 0 is not small.

Besides the counts it can see, the scan solves each published table's margins for the cells it
withheld (:mod:`.derive`): a withheld cell whose value is determined, or bounded inside 1..k-1,
is a finding, and so is a survival quantity published for a group below k.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.disclosure import COUNT_KEYS
from toolkit.disclosure.derive import (
    Derived,
    derive_attrition_csv,
    derive_page,
    derive_results,
)

#: Keys and column names that hold numbers of persons or events.
COUNT_NAMES = COUNT_KEYS | frozenset(
    {
        "counts",
        "size",
        "cohort_size",
        "n_persons",
        "persons",
        "n_at_risk",
        "at_risk",
        "deaths",
        "excluded",
        "n_excluded",
        "n_subgroup",
        "events_subgroup",
        "n_total",
    }
)
_NOUNS = (
    r"persons?|patients?|people|subjects?|events?|deaths?|excluded|rows?|records?|cases?|"
    r"individuals?|women|men|at risk|participants?"
)
_TEXT_PATTERNS = (
    re.compile(rf"(?<![\d.,\-])(\d[\d,]*)\s+(?:{_NOUNS})\b", re.IGNORECASE),
    re.compile(r"\bn\s*=\s*(\d[\d,]*)\b"),
    re.compile(r"(?<![\d.,\-])(\d[\d,]*)\s*\(\s*\d+(?:\.\d+)?\s*%\s*\)"),
    re.compile(r"[−-]\s*(\d[\d,]*)\s+excluded", re.IGNORECASE),
)
_COUNT_HEADERS = re.compile(
    r"^\s*(n|events?|persons?|patients?|at risk|number at risk|n at risk|missing|count|deaths?|excluded)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    file: str
    where: str
    value: float
    why: str = "a count between 1 and k-1"

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.value:g} ({self.why})"


def _derived(found: Iterator[Derived], file: str) -> list[Finding]:
    return [Finding(file, d.where, d.value, d.why) for d in found]


def _small(v: Any, k: int) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < float(v) < k


def scan_json(data: Any, *, min_cell: int, file: str = "", path: str = "") -> Iterator[Finding]:
    """Counts under count-named keys, and counts in text values (e.g. warnings)."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            base = str(key).rsplit(".", 1)[-1]
            if base in COUNT_NAMES:
                if _small(value, min_cell):
                    yield Finding(file, where, float(value))
                elif isinstance(value, dict):
                    for g, v in value.items():
                        if _small(v, min_cell):
                            yield Finding(file, f"{where}.{g}", float(v))
            yield from scan_json(value, min_cell=min_cell, file=file, path=where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from scan_json(value, min_cell=min_cell, file=file, path=f"{path}[{i}]")
    elif isinstance(data, str):
        yield from scan_text(data, min_cell=min_cell, file=file, where=path)


def scan_text(text: str, *, min_cell: int, file: str = "", where: str = "") -> Iterator[Finding]:
    for pattern in _TEXT_PATTERNS:
        for m in pattern.finditer(text):
            n = int(m.group(1).replace(",", ""))
            if _small(n, min_cell):
                start = max(0, m.start() - 40)
                yield Finding(file, f"{where}: …{text[start : m.end() + 10]}…".replace("\n", " "), float(n))


class _Tables(HTMLParser):
    """Collects visible text and tables (header row + cells) of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag in ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "br", "td", "th"):
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _leading_int(cell: str) -> int | None:
    m = re.match(r"\s*(\d[\d,]*)(?![\d.])", cell)
    return int(m.group(1).replace(",", "")) if m else None


def scan_html(html: str, *, min_cell: int, file: str = "") -> Iterator[Finding]:
    parser = _Tables()
    parser.feed(html)
    yield from scan_text(" ".join(parser.text), min_cell=min_cell, file=file, where="text")
    yield from _scan_tables(parser.tables, min_cell=min_cell, file=file)
    yield from _derived(derive_page(parser.tables, min_cell=min_cell), file)


def _scan_tables(tables: list[list[list[str]]], *, min_cell: int, file: str) -> Iterator[Finding]:
    for t, rows in enumerate(tables):
        if not rows:
            continue
        header = rows[0]
        cols = [j for j, h in enumerate(header) if _COUNT_HEADERS.match(h)]
        for r, row in enumerate(rows[1:], start=1):
            for j in cols:
                if j < len(row):
                    n = _leading_int(row[j])
                    if n is not None and _small(n, min_cell):
                        yield Finding(file, f"table {t} row {r} column {header[j]!r}", float(n))


def scan_markdown(text: str, *, min_cell: int, file: str = "") -> Iterator[Finding]:
    yield from scan_text(text, min_cell=min_cell, file=file, where="text")
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    yield from _scan_tables(tables, min_cell=min_cell, file=file)
    yield from _derived(derive_page(tables, min_cell=min_cell), file)


def scan_csv(path: Path, *, min_cell: int, file: str = "") -> Iterator[Finding]:
    frame = pd.read_csv(path)
    for c in frame.columns:
        if str(c) in COUNT_NAMES:
            for i, v in enumerate(frame[c]):
                n = _number_or_none(v)
                if n is not None and _small(n, min_cell):
                    yield Finding(file, f"row {i} column {c!r}", n)
    yield from _derived(derive_attrition_csv(frame, min_cell=min_cell, where="attrition"), file)


def _number_or_none(v: Any) -> float | None:
    """A CSV cell as a number; markers (``<10``, ``withheld``) and blanks are not numbers."""
    if isinstance(v, str):
        try:
            return float(v.replace(",", ""))
        except ValueError:
            return None
    return None if pd.isna(v) else float(v)


def scan_file(path: Path, *, min_cell: int, root: Path | None = None) -> list[Finding]:
    """Every small count in one output file (by type: JSON, CSV, HTML, Markdown, YAML, text)."""
    name = str(path.relative_to(root)) if root else str(path)
    suffix = path.suffix.lower()
    # figures (a PNG and its SVG copy) are checked where they are drawn, not as text
    if suffix in (
        ".png",
        ".svg",
        ".jpg",
        ".pkl",
        ".parquet",
        ".duckdb",
        ".dcm",
        ".ubj",
        ".bin",
        ".pb",
        ".db",
    ):
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            return list(scan_text(text, min_cell=min_cell, file=name))
        found = list(scan_json(data, min_cell=min_cell, file=name))
        return found + _derived(derive_results(data, min_cell=min_cell), name)
    if suffix == ".csv":
        return list(scan_csv(path, min_cell=min_cell, file=name))
    if suffix in (".html", ".htm"):
        return list(scan_html(text, min_cell=min_cell, file=name))
    if suffix == ".md":
        return list(scan_markdown(text, min_cell=min_cell, file=name))
    return list(scan_text(text, min_cell=min_cell, file=name))


def scan_outputs(
    folder: Path | str, *, min_cell: int = 10, skip: tuple[str, ...] = (".cache",)
) -> list[Finding]:
    """Scan every file under ``folder`` (a study's OUT, an agent bundle, an MLflow artifact store)."""
    root = Path(folder)
    out: list[Finding] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part in skip for part in path.relative_to(root).parts):
            out += scan_file(path, min_cell=min_cell, root=root)
    return out
