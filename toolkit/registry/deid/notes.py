"""De-identify a collection of notes: find identifiers person by person, then mask them or
replace them with consistent surrogates (``regent notes deidentify``; the registry's
de-identification uses the same path).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import DeidentificationError
from toolkit.registry.deid.corpus import Note
from toolkit.registry.deid.engine import NoteDeidentifier
from toolkit.registry.deid.keys import date_shift_days
from toolkit.registry.deid.replace import Surrogates, apply, mask, shift_date_text
from toolkit.registry.deid.spans import Span

MODES = ("surrogate", "mask")


@dataclass(frozen=True)
class CleanNote:
    note_id: str
    text: str
    spans: tuple[Span, ...]  # in the input note's character offsets


def person_of(note: Note) -> str:
    """A note without a person is its own person (no surrogate or shift is shared)."""
    return note.person_id if note.person_id is not None else f"note:{note.note_id}"


def replacement_for(
    mode: str, *, key: bytes | None, person: str, shift_days: int | None
) -> Callable[[Span], str]:
    """The function that rewrites one span of this person's notes."""
    if mode not in MODES:
        raise DeidentificationError(f"--mode: expected one of {', '.join(MODES)}; got {mode!r}")
    if mode == "surrogate":
        if key is None or shift_days is None:
            raise DeidentificationError("surrogate mode needs a key (--key-file) for names and date shifts")
        return Surrogates(key, person, shift_days).replace

    def masked(span: Span) -> str:
        if span.kind == "DATE" and shift_days is not None:
            shifted = shift_date_text(span.text, shift_days)
            if shifted is not None:
                return shifted
        return mask(span)

    return masked


def deidentify_notes(
    notes: Sequence[Note],
    *,
    mode: str = "surrogate",
    key: bytes | None = None,
    engine: NoteDeidentifier | None = None,
    shift_of: Callable[[str], int] | None = None,
    max_shift_days: int = 365,
) -> list[CleanNote]:
    """Clean every note, in input order.  Dates move by ``shift_of(person)`` (default: the
    keyed shift of the person id), in mask mode too when a key is given."""
    engine = engine or NoteDeidentifier()
    if shift_of is None and key is not None:
        k = key

        def shift_of(person: str) -> int:
            return date_shift_days(k, person, max_days=max_shift_days)

    by_person: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(notes):
        by_person[person_of(n)].append(i)
    out: list[CleanNote | None] = [None] * len(notes)
    for person, idx in by_person.items():
        shift = shift_of(person) if shift_of is not None else None
        rewrite = replacement_for(mode, key=key, person=person, shift_days=shift)
        found = engine.find_many([notes[i].text for i in idx])
        for i, spans in zip(idx, found, strict=True):
            out[i] = CleanNote(notes[i].note_id, apply(notes[i].text, spans, rewrite), tuple(spans))
    return [c for c in out if c is not None]


def write_outputs(cleaned: Iterable[CleanNote], out: Path, spans: Path | None) -> int:
    """Write ``{"note_id", "text"}`` lines to ``out`` and span lines to ``spans``, atomically."""
    from toolkit.io import atomic_write_text

    cleaned = list(cleaned)
    atomic_write_text(
        out, "".join(json.dumps({"note_id": c.note_id, "text": c.text}) + "\n" for c in cleaned)
    )
    if spans is not None:
        atomic_write_text(
            spans,
            "".join(
                json.dumps({"note_id": c.note_id, "start": s.start, "end": s.end, "kind": s.kind}) + "\n"
                for c in cleaned
                for s in c.spans
            ),
        )
    return sum(len(c.spans) for c in cleaned)
