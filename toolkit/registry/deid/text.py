"""Free-text scrubbing of one note: the note de-identifier (:mod:`.engine`: pattern
recognizers plus the name/place classifier, offline) with typed tags, dates replaced by the
person's shifted date when a shift is given.

For many notes of the same persons use :func:`toolkit.registry.deid.notes.deidentify_notes`,
which reads each person's notes together and offers consistent surrogates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from toolkit.registry.deid.engine import NoteDeidentifier
from toolkit.registry.deid.replace import apply, shift_date_text
from toolkit.registry.deid.spans import Span

__all__ = ["Span", "find_identifiers", "scrub_text"]


@lru_cache(maxsize=8)
def _engine(names: tuple[str, ...]) -> NoteDeidentifier:
    return NoteDeidentifier(names=names)


def find_identifiers(text: str, *, names: Iterable[str] = ()) -> list[Span]:
    """Every identifier found in ``text``, overlapping finds merged."""
    return _engine(tuple(names)).find(text)


def scrub_text(
    text: str,
    *,
    shift_days: int | None = None,
    names: Iterable[str] = (),
    tag: Callable[[str], str] = lambda kind: f"[{kind}]",
) -> tuple[str, list[Span]]:
    """Replace identifiers by tags; dates by the shifted date when ``shift_days`` is given."""
    spans = find_identifiers(text, names=names)

    def replacement(sp: Span) -> str:
        if sp.kind == "DATE" and shift_days is not None:
            shifted = shift_date_text(sp.text, shift_days)
            if shifted is not None:
                return shifted
        return tag(sp.kind)

    return apply(text, spans, replacement), spans
