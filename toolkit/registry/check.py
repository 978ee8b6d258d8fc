"""Data-quality report for a registry (``regent registry check``).

Schema errors (missing tables or columns, wrong types) raise :class:`RegistryError`; data-quality
findings are counts, reported but not fatal.  Counts only: no identifiers or values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import RegistryError
from toolkit.registry import schema as S
from toolkit.registry.importers.summary import ImportSummary, read_summary
from toolkit.registry.store import Registry


@dataclass(frozen=True)
class Finding:
    check: str
    count: int
    severity: str  # "ok" | "warning"
    detail: str = ""


@dataclass(frozen=True)
class QualityReport:
    path: str
    digest: str
    row_counts: dict[str, int]
    findings: tuple[Finding, ...]
    namespaces: dict[str, int] = field(default_factory=dict)
    imported: ImportSummary | None = None

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity != "ok")

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "digest": self.digest,
            "row_counts": self.row_counts,
            "namespaces": self.namespaces,
            "findings": [f.__dict__ for f in self.findings],
            "import": None
            if self.imported is None
            else {
                "format": self.imported.format,
                "facts": dict(self.imported.facts),
                "sources": [
                    {**s.__dict__, "drops": dict(s.drops), "notes": dict(s.notes)}
                    for s in self.imported.sources
                ],
            },
        }

    def to_text(self) -> str:
        lines = [f"Registry {self.path}", f"  digest {self.digest}", "  rows:"]
        lines += [f"    {t:<20} {n:>12,}" for t, n in self.row_counts.items()]
        lines.append("  code namespaces:")
        for ns, n in self.namespaces.items():
            flag = "" if ns in S.KNOWN_NAMESPACES else "   <- unknown namespace (a warning only)"
            lines.append(f"    {ns:<20} {n:>12,}{flag}")
        lines.append("  checks:")
        for f in self.findings:
            mark = "ok  " if f.severity == "ok" else "WARN"
            lines.append(f"    [{mark}] {f.check:<45} {f.count:>10,}  {f.detail}".rstrip())
        if self.imported is not None:
            lines.append("  " + self.imported.to_text().replace("\n", "\n  "))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{f.check}</td><td style='text-align:right'>{f.count:,}</td>"
            f"<td>{'✔' if f.severity == 'ok' else '⚠'}</td></tr>"
            for f in self.findings
        )
        return f"<table><tr><th>check</th><th>count</th><th></th></tr>{rows}</table>"


_CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "events outside any observation period",
        """SELECT COUNT(*) FROM events e WHERE NOT EXISTS (
             SELECT 1 FROM observation_period o WHERE o.person_id = e.person_id
             AND e.time >= o.start_time AND e.time <= o.end_time)""",
        "",
    ),
    (
        "events of persons not in person",
        "SELECT COUNT(*) FROM events e ANTI JOIN person p ON e.person_id = p.person_id",
        "",
    ),
    ("events with missing time", "SELECT COUNT(*) FROM events WHERE time IS NULL", ""),
    (
        "events before birth",
        "SELECT COUNT(*) FROM events e JOIN person p USING (person_id) "
        "WHERE e.time < CAST(p.birth_date AS TIMESTAMP)",
        "negative time since birth",
    ),
    (
        "observation periods ending before they start",
        "SELECT COUNT(*) FROM observation_period WHERE end_time < start_time",
        "",
    ),
    (
        "persons without observation period",
        "SELECT COUNT(*) FROM person p ANTI JOIN observation_period o ON p.person_id = o.person_id",
        "",
    ),
    (
        "duplicate person_id in person",
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM person GROUP BY person_id)",
        "",
    ),
    (
        "duplicate note_id in notes",
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM notes GROUP BY note_id)",
        "",
    ),
    (
        "duplicate image_id in images",
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM images GROUP BY image_id)",
        "",
    ),
    ("persons with missing birth_date", "SELECT COUNT(*) FROM person WHERE birth_date IS NULL", ""),
    ("persons with missing sex", "SELECT COUNT(*) FROM person WHERE sex IS NULL", ""),
)


def check_registry(path: Path | str) -> QualityReport:
    """Validate the schema (raises on error) and compute the data-quality report."""
    with Registry(path) as reg:
        present = reg.table_names()
        counts = {
            t: reg.count(t)
            for t in S.TABLES
            if t not in ("attribute", "metadata", "import_summary") and t in present
        }
        findings = []
        for name, query, detail in _CHECKS:
            row = reg.con.execute(query).fetchone()
            n = int(row[0]) if row and row[0] is not None else 0
            findings.append(Finding(name, n, "ok" if n == 0 else "warning", detail))
        ns_rows = reg.con.execute(
            "SELECT split_part(code, ':', 1) AS ns, COUNT(*) FROM events GROUP BY ns ORDER BY ns"
        ).fetchall()
        namespaces = {str(ns): int(n) for ns, n in ns_rows}
        unknown = {ns: n for ns, n in namespaces.items() if ns not in S.KNOWN_NAMESPACES}
        findings.append(
            Finding(
                "events with unknown code namespace",
                sum(unknown.values()),
                "ok" if not unknown else "warning",
                ", ".join(sorted(unknown)),
            )
        )
        imported = read_summary(reg.con, present)
        return QualityReport(str(path), _digest(reg), counts, tuple(findings), namespaces, imported)


def _digest(reg: Registry) -> str:
    """The content digest; a lake's is recomputed from its files and must match its manifest."""
    digest = reg.digest(recompute=True)
    if reg.manifest is not None and digest != reg.manifest.digest:
        raise RegistryError(
            f"{reg.path}: the tables' content digest is {digest}; manifest.json says "
            f"{reg.manifest.digest}: the Parquet files changed after the lake was written "
            "(rewrite it with regent registry convert)"
        )
    return digest


def import_summary(path: Path | str) -> ImportSummary | None:
    """What the import that wrote ``path`` read, wrote and dropped (``None`` if not recorded)."""
    with Registry(path) as reg:
        return read_summary(reg.con, reg.table_names())
