"""Concept lexicons: concept -> terms, matched case-insensitively on whole words (short upper-case
acronyms such as MI or AF in upper case only); the longest term wins where terms overlap.

>>> load_lexicon({"dyspnea": ["shortness of breath", "SOB"]}).find("SOB and sob")
[(0, 3, 'dyspnea')]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.errors import SpecError
from toolkit.registry import schema as S
from toolkit.specs import read_yaml


@dataclass(frozen=True)
class Lexicon:
    """Concept -> terms, compiled to two regexes (case-insensitive words, case-sensitive acronyms)."""

    concepts: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        folded: list[str] = []
        exact: list[str] = []
        for concept, terms in self.concepts.items():
            if not S.is_identifier(concept):
                raise SpecError(f"lexicon: concept {concept!r}: expected a lower-case identifier")
            for term in terms:
                term = " ".join(term.split())
                acronym = term.isupper() and len(term) <= 4
                key = term if acronym else term.lower()
                (exact if acronym else folded).append(term)
                lookup[key] = concept
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_folded", _words(folded, re.IGNORECASE))
        object.__setattr__(self, "_exact", _words(exact, 0))

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, concept)`` matches, longest first where they overlap."""
        found = []
        for rx, fold in ((self._folded, True), (self._exact, False)):  # type: ignore[attr-defined]
            if rx is None:
                continue
            for m in rx.finditer(text):
                key = " ".join(m.group(0).split())  # "family  history" is "family history"
                key = key.lower() if fold else key
                found.append((m.start(), m.end(), self._lookup[key]))  # type: ignore[attr-defined]
        found.sort(key=lambda x: (-(x[1] - x[0]), x[0]))
        kept: list[tuple[int, int, str]] = []
        for s, e, c in found:
            if all(e <= ks or s >= ke for ks, ke, _ in kept):
                kept.append((s, e, c))
        return sorted(kept)


def _words(terms: list[str], flags: int) -> re.Pattern[str] | None:
    if not terms:
        return None
    alt = "|".join(
        r"\s+".join(re.escape(w) for w in t.split()) for t in sorted(set(terms), key=len, reverse=True)
    )
    return re.compile(rf"(?<![\w-])(?:{alt})(?![\w-])", flags)


def load_lexicon(source: str | Mapping[str, list[str]], *, base: Path | None = None) -> Lexicon:
    """A shipped lexicon by name (``cardiology``), a YAML file ``{concepts: {name: [terms]}}`` or a mapping."""
    if isinstance(source, Mapping):
        data: Any = {"concepts": dict(source)}
        where = "features.notes.lexicon"
    elif "/" not in source and not source.endswith((".yaml", ".yml")):
        ref = resources.files("toolkit.features") / "lexicons" / f"{source}.yaml"
        if not ref.is_file():
            raise SpecError(f"features.notes.lexicon: no shipped lexicon {source!r}; shipped: ['cardiology']")
        with resources.as_file(ref) as p:
            data = read_yaml(p)
        where = str(ref)
    else:
        path = Path(source) if base is None or Path(source).is_absolute() else base / source
        data = read_yaml(path)
        where = str(path)
    concepts = data.get("concepts") if isinstance(data, dict) else None
    if not isinstance(concepts, dict) or not concepts:
        raise SpecError(f"{where}: expected a mapping 'concepts: {{name: [terms, ...]}}'")
    for name, terms in concepts.items():
        if (
            not isinstance(terms, list)
            or not terms
            or not all(isinstance(t, str) and t.strip() for t in terms)
        ):
            raise SpecError(f"{where}: concepts.{name}: expected a non-empty list of terms")
    return Lexicon({str(k): tuple(v) for k, v in concepts.items()})
