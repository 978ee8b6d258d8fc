"""Free-text scrubbing: pattern recognizers for names, dates, phone numbers, record numbers,
addresses, e-mail addresses and institutions; offline, no model downloads.

Each recognizer is a regular expression with the group that holds the identifier; names are
found by context (titles such as ``Dr.``/``Mrs.``, and cues such as ``Patient:``, ``I saw``,
``Dear``, ``Signed:``) and by an optional deny-list of known names (a site's patient index).
Name words may carry accents and mis-decoded characters (``JosÃ©``), as exported text often
does.  Dates can be replaced by the person's shifted date instead of a tag, keeping intervals.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_UPPER = "A-ZÀ-ÖØ-Þ"
_WORD = rf"[{_UPPER}][^\s,;:()\[\]<>\"|/=]*"  # a capitalised word, accents and mojibake included
_NAME = rf"{_WORD}(?:[ \t]+(?:(?:van|von|de|da|del|der|den|la|le|di|du)[ \t]+)?{_WORD}){{0,2}}"
_MONTHS = r"Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
_STREET = (
    r"Street|St\.|Road|Rd\.|Avenue|Ave\.|Lane|Ln\.|Drive|Dr\.|Crescent|Boulevard|Blvd\.|Way|Court|Ct\.|"
    r"Place|Pl\.|Square|Terrace|Close|Gardens|Strasse|Straße|Weg|Rue|Via|Calle"
)

#: kind -> patterns; the identifier is group "id" (or the whole match)
RECOGNIZERS: dict[str, tuple[re.Pattern[str], ...]] = {
    "EMAIL": (re.compile(r"(?P<id>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"),),
    "PHONE": (
        re.compile(r"(?P<id>(?:\+\d{1,3}[\s.-]?)?\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]?\d{3,4})"),
        re.compile(r"(?P<id>\+\d{1,3}(?:[\s.-]?\d{2,4}){3,4})"),
        re.compile(r"(?<![\d.])(?P<id>\d{3}[.-]\d{3}[.-]\d{4})(?![\d])"),
        re.compile(r"(?i)(?:phone|tel\.?|telephone|mobile|fax)[:\s]+(?P<id>[\d()+][\d()\s.+-]{6,}\d)"),
    ),
    "DATE": (
        re.compile(r"(?<!\d)(?P<id>(?:19|20)\d{2}-\d{2}-\d{2})(?!\d)"),
        re.compile(r"(?<!\d)(?P<id>\d{1,2}[/.]\d{1,2}[/.](?:19|20)?\d{2})(?![\d/.])"),
        re.compile(rf"(?i)(?P<id>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?,?\s+(?:19|20)\d{{2}})"),
        re.compile(rf"(?i)(?P<id>(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}})"),
        re.compile(r"(?i)(?:date|dob|born|on)[:\s]+(?P<id>(?:19|20)\d{6})(?!\d)"),
        re.compile(r"(?<![\d.,/:-])(?P<id>(?:19|20)\d{2})(?![\d/:%-]|[.,]\d)"),  # a year on its own
    ),
    "MRN": (
        re.compile(
            r"(?i)(?:MRN|medical record(?: number| no\.?)?|record (?:number|no\.?)|hospital (?:number|no\.?)|"
            r"patient id|NHS (?:number|no\.?))[\s:#]*(?P<id>[A-Z0-9][A-Z0-9-]{4,14})"
        ),
        re.compile(r"(?<![\d.,-])(?P<id>\d{8,10})(?![\d.,])"),
    ),
    "ADDRESS": (
        re.compile(
            rf"(?P<id>\b\d{{1,5}}[A-Za-z]?\s+(?:{_WORD}\s+){{1,3}}(?:{_STREET})(?:,?\s+{_WORD}(?:\s+{_WORD})?)?"
            r"(?:,?\s+[A-Z]{0,2}\d{4,6}(?:-\d{4})?)?)"
        ),
    ),
    "INSTITUTION": (
        re.compile(
            rf"(?P<id>(?:{_WORD}\s+){{1,4}}(?:Hospital|Clinic|Centre|Center|Infirmary|Institute|Medical Group))\b"
        ),
        re.compile(
            rf"(?P<id>(?:H[oô]pital|Hospital|Klinikum|Clinique|Clinica|Hôpital|HÃ´pital)\s+{_WORD}(?:\s+{_WORD})?)"
        ),
    ),
    "NAME": (
        re.compile(rf"(?P<id>\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Sir|Dame)\.?[ \t]+{_NAME})"),
        re.compile(
            rf"(?i:patient|pt|name|patient name|attending|signed|reported by|referred by|dictated by|"
            rf"cc|i saw|we saw|seen|dear|follow-up with|spouse|daughter|son|wife|husband)"
            rf"[:\s]+(?P<id>(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?[ \t]+)?{_NAME})"
        ),
    ),
}
_TITLES = frozenset({"Dr", "Mr", "Mrs", "Ms", "Miss", "Mx", "Prof", "Sir", "Dame"})
#: words that look like names after a cue but are not
_NOT_NAMES = frozenset(
    {
        "The",
        "This",
        "He",
        "She",
        "They",
        "His",
        "Her",
        "No",
        "Not",
        "In",
        "At",
        "On",
        "With",
        "For",
        "And",
        "MRN",
        "DOB",
    }
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    text: str


def find_identifiers(text: str, *, names: Iterable[str] = ()) -> list[Span]:
    """Every identifier found in ``text``, overlapping finds merged (longest kind wins)."""
    found: list[Span] = []
    for kind, patterns in RECOGNIZERS.items():
        for pattern in patterns:
            for m in pattern.finditer(text):
                g = "id" if "id" in pattern.groupindex else 0
                s, e = m.span(g)
                value = text[s:e].rstrip(".")
                e = s + len(value)
                if kind == "NAME":
                    words = [w for w in value.split() if w.rstrip(".") not in _TITLES]
                    first = words[0] if words else ""
                    if first in _NOT_NAMES or not value:
                        continue
                if e > s:
                    found.append(Span(s, e, kind, text[s:e]))
    for name in names:
        if len(name) >= 3:
            for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
                found.append(Span(m.start(), m.end(), "NAME", m.group(0)))
    found.sort(key=lambda sp: (sp.start, -(sp.end - sp.start)))
    merged: list[Span] = []
    for sp in found:
        if merged and sp.start < merged[-1].end:
            last = merged[-1]
            if sp.end > last.end:
                merged[-1] = Span(last.start, sp.end, last.kind, text[last.start : sp.end])
            continue
        merged.append(sp)
    return merged


def _parse_date(s: str) -> dt.date | None:
    for fmt in (
        "%Y-%m-%d",
        "%Y%m%d",
        "%d/%m/%Y",
        "%d.%m.%Y",
        "%d %B %Y",
        "%d %b %Y",
        "%B %d, %Y",
        "%b %d, %Y",
    ):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def scrub_text(
    text: str,
    *,
    shift_days: int | None = None,
    names: Iterable[str] = (),
    tag: Callable[[str], str] = lambda kind: f"[{kind}]",
) -> tuple[str, list[Span]]:
    """Replace identifiers by tags; dates by the shifted date when ``shift_days`` is given."""
    spans = find_identifiers(text, names=names)
    out: list[str] = []
    pos = 0
    for sp in spans:
        out.append(text[pos : sp.start])
        replacement = tag(sp.kind)
        if sp.kind == "DATE" and shift_days is not None:
            d = _parse_date(sp.text)
            if d is not None:
                replacement = (d + dt.timedelta(days=shift_days)).isoformat()
        out.append(replacement)
        pos = sp.end
    out.append(text[pos:])
    return "".join(out), spans
