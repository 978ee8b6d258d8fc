"""Identifier spans found in a note, and how overlapping finds are merged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: when two finds overlap, the merged span keeps the kind that ranks first here
KIND_PRIORITY = ("EMAIL", "PHONE", "ID", "MRN", "ADDRESS", "AGE", "DATE", "INSTITUTION", "LOCATION", "NAME")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    text: str


def _rank(kind: str) -> int:
    return KIND_PRIORITY.index(kind) if kind in KIND_PRIORITY else len(KIND_PRIORITY)


def merge_spans(text: str, spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans become one; its kind is the highest-priority kind among them."""
    ordered = sorted(spans, key=lambda sp: (sp.start, -sp.end))
    merged: list[Span] = []
    for sp in ordered:
        if merged and sp.start < merged[-1].end:
            last = merged[-1]
            end = max(last.end, sp.end)
            kind = last.kind if _rank(last.kind) <= _rank(sp.kind) else sp.kind
            merged[-1] = Span(last.start, end, kind, text[last.start : end])
            continue
        merged.append(Span(sp.start, sp.end, sp.kind, text[sp.start : sp.end]))
    return merged
