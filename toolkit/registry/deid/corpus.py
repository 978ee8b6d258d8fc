"""Notes and gold identifier spans for evaluating the free-text de-identifier.

Two formats are read:

* the PhysioNet ``deid`` corpus: a ``.text`` file of records, each
  ``START_OF_RECORD=<patient>||||<note>||||`` on its own line, the note, then ``||||END_OF_RECORD``;
  and a ``.phrase`` file of gold lines ``patient note start end category text``, offsets counted
  from the first character after the START_OF_RECORD line's newline;
* JSON Lines: notes ``{"note_id", "text", "person_id"?}`` and gold spans
  ``{"note_id", "start", "end", "kind"}`` (the format ``regent notes deidentify --spans`` writes).

Errors name the file and line; they never quote the note text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import DeidentificationError

_START = re.compile(r"^START_OF_RECORD=([^|]+)\|\|\|\|([^|]+)\|\|\|\|$")
_END = "||||END_OF_RECORD"


@dataclass(frozen=True)
class Note:
    note_id: str
    text: str
    person_id: str | None = None


@dataclass(frozen=True)
class GoldSpan:
    note_id: str
    start: int
    end: int
    kind: str


def physionet_note_id(patient: str, note: str) -> str:
    return f"{patient}:{note}"


def read_physionet_notes(path: Path | str) -> list[Note]:
    """Records of a PhysioNet ``deid`` ``.text`` file, with ``patient:note`` ids."""
    path = Path(path)
    notes: list[Note] = []
    current: tuple[str, str, int] | None = None
    body: list[str] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            stripped = line.rstrip("\r\n")
            if current is None:
                m = _START.match(stripped)
                if m:
                    current, body = (m.group(1), m.group(2), lineno), []
                elif stripped.strip():
                    raise DeidentificationError(
                        f"{path}:{lineno}: expected START_OF_RECORD=<patient>||||<note>||||"
                    )
                continue
            if stripped == _END:
                text = "".join(body)
                notes.append(Note(physionet_note_id(current[0], current[1]), text, current[0]))
                current = None
                continue
            body.append(line)
    if current is not None:
        raise DeidentificationError(f"{path}:{current[2]}: record has no ||||END_OF_RECORD line")
    return notes


def read_physionet_gold(path: Path | str) -> list[GoldSpan]:
    """Gold lines ``patient note start end category text`` (end exclusive)."""
    path = Path(path)
    spans: list[GoldSpan] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=5)
            if len(parts) < 5 or not (parts[2].isdigit() and parts[3].isdigit()):
                raise DeidentificationError(
                    f"{path}:{lineno}: expected 'patient note start end category text'"
                )
            start, end = int(parts[2]), int(parts[3])
            if end <= start:
                raise DeidentificationError(f"{path}:{lineno}: end must be after start")
            spans.append(GoldSpan(physionet_note_id(parts[0], parts[1]), start, end, parts[4]))
    return spans


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DeidentificationError(f"{path}:{lineno}: not a JSON object") from None
            if not isinstance(row, dict):
                raise DeidentificationError(f"{path}:{lineno}: not a JSON object")
            yield lineno, row


def read_jsonl_notes(path: Path | str) -> list[Note]:
    """``{"note_id", "text", "person_id"?}`` per line; note ids must be unique."""
    path = Path(path)
    notes: list[Note] = []
    seen: set[str] = set()
    for lineno, row in _jsonl(path):
        unknown = set(row) - {"note_id", "text", "person_id"}
        if unknown:
            raise DeidentificationError(
                f"{path}:{lineno}: unknown field(s) {sorted(unknown)}; expected note_id, text, person_id"
            )
        note_id, text, person = row.get("note_id"), row.get("text"), row.get("person_id")
        if not isinstance(note_id, str | int) or isinstance(note_id, bool):
            raise DeidentificationError(f"{path}:{lineno}: note_id must be a string or integer")
        if not isinstance(text, str):
            raise DeidentificationError(f"{path}:{lineno}: text must be a string")
        if person is not None and (not isinstance(person, str | int) or isinstance(person, bool)):
            raise DeidentificationError(f"{path}:{lineno}: person_id must be a string or integer")
        if str(note_id) in seen:
            raise DeidentificationError(f"{path}:{lineno}: note_id repeated (line numbers identify it)")
        seen.add(str(note_id))
        notes.append(Note(str(note_id), text, None if person is None else str(person)))
    return notes


def read_jsonl_gold(path: Path | str) -> list[GoldSpan]:
    """``{"note_id", "start", "end", "kind"}`` per line."""
    path = Path(path)
    spans: list[GoldSpan] = []
    for lineno, row in _jsonl(path):
        start, end, kind = row.get("start"), row.get("end"), row.get("kind")
        if not isinstance(start, int) or not isinstance(end, int) or end <= start or start < 0:
            raise DeidentificationError(f"{path}:{lineno}: start and end must be integers, 0 <= start < end")
        if not isinstance(kind, str) or "note_id" not in row:
            raise DeidentificationError(f"{path}:{lineno}: expected note_id and a string kind")
        spans.append(GoldSpan(str(row["note_id"]), start, end, kind))
    return spans


def read_notes(path: Path | str) -> list[Note]:
    """Notes from a PhysioNet ``.text`` file or a JSONL file (chosen by the first line)."""
    path = Path(path)
    if not path.is_file():
        raise DeidentificationError(f"{path}: notes file not found")
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
    return read_physionet_notes(path) if first.startswith("START_OF_RECORD=") else read_jsonl_notes(path)


def read_gold(path: Path | str) -> list[GoldSpan]:
    """Gold spans from a PhysioNet ``.phrase`` file or a JSONL file (chosen by the first line)."""
    path = Path(path)
    if not path.is_file():
        raise DeidentificationError(f"{path}: gold file not found")
    with path.open(encoding="utf-8") as fh:
        first = fh.readline().lstrip()
    return read_jsonl_gold(path) if first.startswith("{") else read_physionet_gold(path)


def check_gold(notes: Iterable[Note], gold: Iterable[GoldSpan], *, source: str) -> None:
    """Every gold span must refer to a known note and lie inside it."""
    length = {n.note_id: len(n.text) for n in notes}
    for i, g in enumerate(gold, 1):
        if g.note_id not in length:
            raise DeidentificationError(f"{source}: gold span {i} refers to a note not in the notes file")
        if g.end > length[g.note_id]:
            raise DeidentificationError(f"{source}: gold span {i} ends after its note's last character")
