"""Replacing found identifiers: typed masks (``[NAME]``, ``[DATE]``) or realistic surrogates.

Surrogates are consistent within a person: the same real word always gets the same fake one
in all of that person's notes (a keyed HMAC picks it from the census name lists or the US
city list), letter case follows the original (``HEALEY`` -> ``MORENO``, ``healey`` ->
``moreno``), and dates move by the person's keyed shift in their own format (``7/22`` ->
``9/3``, ``8/20/02`` -> ``10/1/02``, ``July 29th`` -> ``September 9th``), so intervals
survive.  A bare year moves by the shift rounded to whole years; ages over 89 become 90.
Phone numbers, record numbers and e-mail addresses keep their shape with keyed digits and
letters.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from toolkit.registry.deid.lexicon import load_lexicon
from toolkit.registry.deid.spans import Span

MASKS = {"LOCATION": "[LOCATION]", "INSTITUTION": "[LOCATION]", "MRN": "[ID]"}
_MONTHS = [m.lower() for m in calendar.month_name]
_MONTH_ABBR = {m[:3]: i for i, m in enumerate(_MONTHS) if m} | {"sept": 9}
_ORD = re.compile(r"(\d+)(st|nd|rd|th)", re.I)


_TITLE = re.compile(r"(?i)^(?:dr|mr|mrs|ms|miss|prof|mx)\.?[ \t]+")


def mask(span: Span) -> str:
    """``[NAME]``, ``[DATE]`` ...; a title stays in front of its name (``Dr. [NAME]``)."""
    tag = MASKS.get(span.kind, f"[{span.kind}]")
    title = _TITLE.match(span.text) if span.kind == "NAME" else None
    return title.group(0) + tag if title else tag


@dataclass(frozen=True)
class Surrogates:
    """Keyed surrogates for one person (``scope`` is that person's id)."""

    key: bytes
    scope: str
    shift_days: int

    def _pick(self, purpose: str, value: str, n: int) -> int:
        digest = hmac.new(self.key, f"{purpose}\x00{self.scope}\x00{value}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") % n

    def replace(self, span: Span) -> str:
        kind = span.kind
        if kind == "NAME":
            title = _TITLE.match(span.text)
            head = title.group(0) if title else ""
            rest = span.text[len(head) :]
            return head + re.sub(r"[^\W\d_]+(?:'[^\W\d_]+)?", lambda m: self.name_word(m.group(0)), rest)
        if kind in ("LOCATION", "INSTITUTION"):
            return self.place(span.text)
        if kind == "DATE":
            return shift_date_text(span.text, self.shift_days) or mask(span)
        if kind == "AGE":
            return "90"
        if kind == "EMAIL":
            return f"user{self._pick('email', span.text.lower(), 10**6):06d}@example.org"
        return self.same_shape(span.text, kind)

    def name_word(self, word: str) -> str:
        names, initials = _surrogate_names()
        k = word.lower()
        if len(k) == 1:
            return _case_like(word, initials[self._pick("initial", k, len(initials))])
        return _case_like(word, names[self._pick("name", k, len(names))])

    def place(self, text: str) -> str:
        places = _surrogate_places()
        return _case_like(text, places[self._pick("place", " ".join(text.lower().split()), len(places))])

    def same_shape(self, text: str, kind: str) -> str:
        out = []
        for i, c in enumerate(text):
            n = self._pick(f"{kind}{i}", text, 10 if c.isdigit() else 26)
            out.append(
                str(n) if c.isdigit() else chr(ord("a" if c.islower() else "A") + n) if c.isalpha() else c
            )
        return "".join(out)


def _case_like(original: str, surrogate: str) -> str:
    letters = [c for c in original if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(letters) > 1:
        return surrogate.upper()
    if letters and all(c.islower() for c in letters):
        return surrogate.lower()
    return surrogate.title()


@lru_cache(maxsize=1)
def _surrogate_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The 2,000 most frequent census surnames and first names (readable, common)."""
    lex = load_lexicon()
    first = sorted(lex.first_names, key=lambda n: -lex.first_names[n])[:1000]
    last = sorted(lex.surnames, key=lambda n: -lex.surnames[n])[:1000]
    return tuple(sorted(set(first) | set(last))), tuple("ABCDEFGHJKLMNPRSTW")


@lru_cache(maxsize=1)
def _surrogate_places() -> tuple[str, ...]:
    return tuple(sorted(p for p in load_lexicon().places if p.isalpha() and len(p) > 3))


def _year(y: int, width: int) -> str:
    return f"{y % 100:02d}" if width == 2 else str(y)


def shift_date_text(text: str, days: int) -> str | None:
    """``text`` moved by ``days`` in its own format, or None when it cannot be read."""
    t = text.strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", t)
    if m:
        d = _date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return None if d is None else (d + dt.timedelta(days=days)).isoformat()
    m = re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})(?:\2(\d{2}|\d{4}))?", t)
    if m:
        mo, da, sep, y = int(m.group(1)), int(m.group(3)), m.group(2), m.group(4)
        year = (
            2000
            if y is None
            else (int(y) if len(y) == 4 else 1900 + int(y) if int(y) > 30 else 2000 + int(y))
        )
        if sep == ".":  # 03.04.2021 is day.month.year
            mo, da = da, mo
        d = _date(year, mo, da)
        if d is None:
            return None
        s = d + dt.timedelta(days=days)
        base = f"{s.day:02d}.{s.month:02d}" if sep == "." else f"{s.month}{sep}{s.day}"
        return base if y is None else f"{base}{sep}{_year(s.year, len(y))}"
    m = re.fullmatch(r"'?(\d{2}|\d{4})'?(s?)", t, flags=re.I)
    if m:
        width = len(m.group(1))
        y = int(m.group(1))
        years = round(days / 365.25)
        new = (y + years) % 100 if width == 2 else y + years
        return t.replace(m.group(1), f"{new:02d}" if width == 2 else str(new), 1)
    return _shift_written(t, days)


def _date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _shift_written(t: str, days: int) -> str | None:
    words = re.findall(r"[A-Za-z]+", t)
    month = next((i for w in words if (i := _month_index(w))), None)
    if month is None:
        return None
    numbers = [int(n) for n in re.findall(r"\d+", t)]
    day = next((n for n in numbers if 1 <= n <= 31), None)
    year4 = next((n for n in numbers if n >= 1000), None)
    d = _date(year4 or 2000, month, day or 15)
    if d is None:
        return None
    s = d + dt.timedelta(days=days)
    name_word = next(w for w in words if _month_index(w))
    full = calendar.month_name[s.month]
    new_name = _case_like(name_word, full if name_word.lower() in _MONTHS else full[:3])
    out = t.replace(name_word, new_name, 1)
    if day is not None:
        out = re.sub(rf"\b{day}(?=\D|$)", str(s.day), out, count=1)
        out = _ORD.sub(lambda m: m.group(1) + _ordinal(int(m.group(1))), out)
    if year4 is not None:
        out = out.replace(str(year4), str(s.year), 1)
    return out


def _month_index(word: str) -> int | None:
    w = word.lower()
    if w in _MONTHS:
        return _MONTHS.index(w)
    return _MONTH_ABBR.get(w)


def _ordinal(n: int) -> str:
    return "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def apply(text: str, spans: Sequence[Span], replacement: Callable[[Span], str]) -> str:
    """``text`` with every span replaced (spans sorted and not overlapping)."""
    out, pos = [], 0
    for sp in spans:
        out.append(text[pos : sp.start])
        out.append(replacement(sp))
        pos = sp.end
    out.append(text[pos:])
    return "".join(out)
