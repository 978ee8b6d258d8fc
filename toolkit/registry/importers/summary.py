"""Row accounting for imports: what each source table gave, what was written, what was dropped.

Every importer of foreign data (OMOP CDM, MEDS) builds an :class:`ImportSummary`, stores it in the
registry's ``import_summary`` table and prints it.  Counts only, never values: a reason names a
rule ("before birth"), not the row that broke it.  For every imported source,
``rows_written == rows_read - sum(drops.values())``; ``notes`` carries counts that did not cost a
row (codes that stayed opaque, events outside observation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import duckdb

from toolkit.errors import ImportMappingError


@dataclass(frozen=True)
class SourceSummary:
    """One source table (or MEDS row class): rows read and written, drops by reason."""

    source: str
    target: str | None
    status: str  # "imported" | "empty" | "skipped"
    rows_read: int = 0
    rows_written: int = 0
    drops: Mapping[str, int] = field(default_factory=dict)
    notes: Mapping[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dropped = sum(self.drops.values())
        if self.status == "imported" and self.rows_written != self.rows_read - dropped:
            raise ImportMappingError(
                f"{self.source}: row accounting does not add up (read {self.rows_read}, wrote "
                f"{self.rows_written}, dropped {dropped}); this is a bug in the importer"
            )

    @property
    def rows_dropped(self) -> int:
        return sum(self.drops.values())


@dataclass(frozen=True)
class ImportSummary:
    """The whole import: one :class:`SourceSummary` per source, plus format facts."""

    format: str  # e.g. "OMOP CDM 5.3", "MEDS"
    sources: tuple[SourceSummary, ...]
    facts: Mapping[str, str] = field(default_factory=dict)  # version source, header detection, ...

    def source(self, name: str) -> SourceSummary:
        for s in self.sources:
            if s.source == name:
                return s
        raise KeyError(name)

    def to_text(self) -> str:
        lines = [f"Imported {self.format}"]
        lines += [f"  {k}: {v}" for k, v in self.facts.items()]
        width = max((len(s.source) for s in self.sources), default=10)
        lines.append(f"  {'source':<{width}}  {'status':<8} {'read':>10} {'written':>10} {'dropped':>8}  to")
        for s in self.sources:
            if s.status == "skipped":
                lines.append(
                    f"  {s.source:<{width}}  {'skipped':<8} {'-':>10} {'-':>10} {'-':>8}  ({s.notes.get('reason', '')})"
                )
                continue
            written = f"{s.rows_written:,}" if s.status == "imported" else "-"
            dropped = f"{s.rows_dropped:,}" if s.status == "imported" else "-"
            lines.append(
                f"  {s.source:<{width}}  {s.status:<8} {s.rows_read:>10,} {written:>10} {dropped:>8}  "
                f"{s.target or ''}".rstrip()
            )
            for reason, n in s.drops.items():
                lines.append(f"  {'':<{width}}    dropped {n:,}: {reason}")
            for what, value in s.notes.items():
                shown = f"{value:,}" if isinstance(value, int) else str(value)
                lines.append(f"  {'':<{width}}    note: {what}: {shown}")
        return "\n".join(lines)


_FACTS = "(import)"  # the row that holds the format and the facts


def write_summary(con: duckdb.DuckDBPyConnection, summary: ImportSummary) -> None:
    """Store ``summary`` in the registry being written (the ``import_summary`` table).

    Not in ``metadata``: that table is part of the content digest, and how a registry was
    imported must not change what it holds (a MEDS round trip keeps the digest).
    """
    con.execute(
        "INSERT INTO import_summary VALUES (?, ?, 'format', NULL, NULL, NULL, NULL, ?)",
        [_FACTS, summary.format, json.dumps(dict(summary.facts), sort_keys=True)],
    )
    con.executemany(
        "INSERT INTO import_summary VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                s.source,
                s.target,
                s.status,
                s.rows_read,
                s.rows_written,
                s.rows_dropped,
                json.dumps(dict(s.drops), sort_keys=True),
                json.dumps(dict(s.notes), sort_keys=True),
            ]
            for s in summary.sources
        ],
    )


def read_summary(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> ImportSummary | None:
    """The summary stored in an open registry, or ``None`` if it has none."""
    if "import_summary" not in set(tables):
        return None
    rows = con.execute(
        "SELECT source, target, status, rows_read, rows_written, drops, notes FROM import_summary"
    ).fetchall()
    head = [r for r in rows if r[0] == _FACTS and r[2] == "format"]
    rows = [r for r in rows if not (r[0] == _FACTS and r[2] == "format")]
    if not rows and not head:
        return None
    fmt = str(head[0][1]) if head else "unknown"
    facts = json.loads(head[0][6] or "{}") if head else {}
    sources = tuple(
        SourceSummary(
            source=r[0],
            target=r[1],
            status=r[2],
            rows_read=int(r[3] or 0),
            rows_written=int(r[4] or 0),
            drops=json.loads(r[5] or "{}"),
            notes=json.loads(r[6] or "{}"),
        )
        for r in rows
    )
    return ImportSummary(fmt, sources, {k: str(v) for k, v in facts.items()})
