"""Pattern recognizers for identifiers with a shape: dates, phone and pager numbers, ages over
89, e-mail addresses, record and reference numbers, street addresses.  Case-insensitive; each
returns spans in the note's character offsets.

Dates: full numeric dates (``8/20/02``, ``10-15-19``, ``2021-03-02``, ``03.04.2021``), month/day
without a year (``7/22``; not ratios such as vent settings ``PSV 10/5``, ``1/2 NS`` or blood
pressures ``88/46``), written months (``July 29th``, ``21 Apr``, ``MARCH OF 1993``), ordinal days
after ``the`` (``the 11th``), years (``1992``; ``'92``/``74'``; two-digit years after a
history item such as ``MI 92``).  Clock times (``1900-0700``, ``@2330``) and lab values are not
dates.  A date followed by ``.`` or ``,`` is still a date.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from toolkit.registry.deid.spans import Span

_MONTH_FULL = r"january|february|march|april|june|july|august|september|october|november|december"
_MONTH_ABBR = r"jan|feb|mar|apr|may|jun|jul|aug|sept?|oct|nov|dec"
_ORD = r"(?:st|nd|rd|th)"
_B = r"(?<![\w/.])"  # not glued to a word, number, slash or decimal point before
_A = r"(?![\w/]|\.\d)"  # nor after (a sentence's full stop is fine)

#: words before a month/day that make it a ratio, a setting or a reading, not a date
_RATIO_CUES = frozenset(
    [
        "psv",
        "ps",
        "cpap",
        "peep",
        "simv",
        "ac",
        "a/c",
        "vent",
        "settings",
        "bipap",
        "imv",
        "prvc",
        "pc",
        "bp",
        "b/p",
        "sbp",
        "abp",
        "nbp",
        "art",
        "cuff",
        "x",
        "ie",
        "i:e",
        "ratio",
    ]
)
#: words near ``n/m`` that make it a ventilator setting
_VENT_WORDS = frozenset(
    [
        "cpap",
        "ps",
        "psv",
        "bipap",
        "bi-pap",
        "peep",
        "vent",
        "ips",
        "imv",
        "simv",
        "ac",
        "prvc",
        "trial",
        "ventilation",
        "mask",
        "fio2",
    ]
)
#: words near ``n/m`` that make it a ventilator setting
_VENT_WORDS = frozenset(
    [
        "cpap",
        "ps",
        "psv",
        "bipap",
        "bi-pap",
        "peep",
        "vent",
        "ips",
        "imv",
        "fio2",
        "weaning",
        "wean",
        "trial",
        "tv",
        "vts",
        "ac",
        "simv",
        "prvc",
        "mask",
        "settings",
        "rsbi",
    ]
)
#: words before ``n/10`` that make it a pain score
_PAIN_CUES = frozenset(
    [
        "pain",
        "cp",
        "discomfort",
        "c/o",
        "rates",
        "rated",
        "scale",
        "score",
        "angina",
        "severe",
        "pressure",
        "headache",
        "ha",
        "denies",
    ]
)
#: words after ``n-m`` that make it a range of amounts
_RANGE_AFTER = frozenset(
    [
        "hours",
        "hrs",
        "hr",
        "h",
        "l",
        "liters",
        "lpm",
        "pillows",
        "times",
        "x",
        "days",
        "mg",
        "mcg",
        "units",
        "u",
        "cc",
        "ml",
        "breaths",
        "min",
        "minutes",
        "weeks",
        "wks",
        "months",
        "assist",
        "beats",
        "people",
        "%",
    ]
)
#: words after ``n/m`` that make it a fraction
_FRACTION_AFTER = frozenset(
    ["ns", "str", "strength", "up", "way", "bilat", "bilaterally", "of", "tab", "tabs", "tsp", "cup", "ml"]
)
#: words before a bare two-digit number that make it a year (``MI 92``, ``CABG '84``)
_HISTORY = frozenset(
    [
        "mi",
        "cabg",
        "cva",
        "avr",
        "mvr",
        "redo",
        "ptca",
        "stent",
        "stents",
        "pacer",
        "pacemaker",
        "ablation",
        "chole",
        "cholecystectomy",
        "repair",
        "tah",
        "bso",
        "dx",
        "diagnosed",
        "appy",
        "appendectomy",
        "hysterectomy",
        "tia",
        "pe",
        "dvt",
        "ca",
        "cancer",
        "surgery",
        "since",
        "in",
        "year",
        "yr",
        "born",
    ]
)
#: words before a year: the history words, a few verbs and prepositions, and the months
_YEAR_CUES = (
    _HISTORY | frozenset(["of", "is", "was", "during", "circa", "may"]) | frozenset(_MONTH_FULL.split("|"))
)
_ORDINAL_NOT_DATE = frozenset(
    [
        "degree",
        "time",
        "times",
        "attempt",
        "dose",
        "day",
        "floor",
        "rib",
        "ics",
        "grade",
        "try",
        "ventricle",
        "finger",
        "toe",
        "space",
        "intercostal",
        "nerve",
        "cranial",
        "lumbar",
        "percentile",
        "generation",
        "line",
    ]
)
_MONTH_ALONE_CUES = frozenset(
    ["in", "since", "of", "early", "late", "mid", "until", "by", "from", "during", "last", "next", "this"]
)
_DATE_CUES = frozenset(
    [
        "on",
        "since",
        "from",
        "until",
        "till",
        "by",
        "of",
        "dated",
        "date",
        "lbm",
        "admitted",
        "adm",
        "returned",
        "discharged",
        "seen",
        "last",
        "started",
        "begun",
        "placed",
        "d/c",
        "dc'd",
        "in",
    ]
)

_FULL_NUMERIC = re.compile(
    rf"{_B}(?:(?:19|20)\d{{2}}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    rf"|(?:0?[1-9]|[12]\d|3[01])(?P<s>[-/.])(?:0?[1-9]|[12]\d|3[01])(?P=s)(?:19|20)?\d{{2}}"
    rf"|(?:0?[1-9]|1[0-2])/\d{{2}}/\d{{2}}/\d{{2}}){_A}"
)
_MONTH_DAY = re.compile(rf"{_B}(?P<m>0?[1-9]|1[0-2])(?P<sep>[/-])(?P<d>0?[1-9]|[12]\d|3[01]){_A}")
_MONTH_YEAR = re.compile(rf"{_B}(?:0?[1-9]|1[0-2])/(?:19|20)?[89]\d{_A}")
_WRITTEN = re.compile(
    rf"(?i)\b(?:(?:\d{{1,2}}{_ORD}?\s*(?:of\s+)?)?(?:{_MONTH_FULL}|{_MONTH_ABBR})\b\.?"
    rf"(?:\s*\d{{1,2}}{_ORD}?\b)?(?:,?\s*(?:of\s+)?(?:19|20)?\d{{2}}\b)?)"
)
_ORDINAL = re.compile(rf"(?i)\bthe\s+(?P<d>(?:[1-9]|[12]\d|3[01]){_ORD})\b")
_YEAR4 = re.compile(r"(?<![\w/.:@-])(?P<y>(?:19[0-9]\d|20[0-3]\d))(?:'?[sS])?(?![\w/:%-]|\.\d)")
_YEAR2_QUOTED = re.compile(r"(?:(?<=[\s(,])'(?P<a>\d{2})(?!\d)|(?<![\d/.])(?P<b>\d{2})'(?!\w))")
_YEAR2 = re.compile(r"(?<![\w/.'-])(?P<y>\d{2})(?![\w/%':-]|\.\d)")

_PHONE = re.compile(
    r"(?<!\d)(?<!\d-)(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\d-])"
    r"|(?<=\()\d{6}-\d{4}(?=\))|(?<=\()\d{3}[ -]\d{3}[ -]\d{4,5}(?=\))"
)
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\d{2,4}){3,4}(?!\d)")
_PHONE_CUE = re.compile(
    r"(?i)\b(?:pager|pgr|pg|beeper|beep|page|cell|mobile|home|work|office|phone|ph|tel|telephone|fax|"
    r"number|no|contact|#)\s*(?:number|no\.?|#)?\s*[:#]?\s*(?P<id>\d[\d\s()-]{3,}\d)"
)
_AGE = re.compile(
    r"(?i)(?<![\d.])(?P<id>(?:9\d|1[01]\d))\s*(?:-\s*)?(?:yo\b|y\.?o\.?|y/o|yr?s?\.?\s*old|years?\b|yr\b|"
    r"year-old)"
)
_AGE_LINE = re.compile(
    r"(?im)^[ \t]*(?P<id>(?:9\d|1[01]\d))(?=\s+(?:s/p|with|w/|m\b|f\b|male|female|man|woman|gentleman|lady))"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ID = re.compile(
    r"(?i)(?:\b(?:mrn|medical record(?: number| no\.?)?|record (?:number|no\.?)|hospital (?:number|no\.?)|"
    r"patient id|nhs (?:number|no\.?)|ref(?:erence)?|policy|acct|account|ssn)\s*[:#]?\s*#?|#)"
    r"(?P<id>(?=[a-z0-9-]*\d)[a-z0-9][a-z0-9-]{3,14})\b"
)
_LONG_NUMBER = re.compile(r"(?<![\d.,/-])\d{7,10}(?![\d.,/])")
_UPPER = "A-ZÀ-ÖØ-Þ"
_STREET = (
    r"Street|STREET|St\.|ST\.|Road|ROAD|Rd\.|RD\.|Avenue|AVENUE|Ave\.?|AVE\.?|Lane|LANE|Ln\.|Drive|DRIVE|"
    r"Boulevard|BOULEVARD|Blvd\.?|BLVD\.?|Court|Ct\.|Place|Pl\.|Square|Terrace|Crescent|Gardens|Way|Close|"
    r"Strasse|Straße|Weg|Rue|Calle"
)
#: a house number, one to three capitalised words, a street type (case-sensitive: ``3 way
#: foley`` and ``2L O2 via NC`` are not addresses), then optionally a town and a postcode
_CAP = rf"(?:[{_UPPER}][\w'À-ÿ-]*)"
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:{_CAP}\s+){{1,3}}(?:{_STREET})(?!\w)"
    rf"(?:,?\s+{_CAP}(?:\s+{_CAP})?)?(?:,?\s+[A-Z]{{0,2}}\d[\dA-Z]{{2,5}}(?:\s?\d[A-Z]{{2}})?(?:-\d{{4}})?)?"
)


def _words_before(text: str, start: int, n: int = 2) -> list[str]:
    words = re.findall(r"[A-Za-z0-9/:#&]+", text[max(0, start - 30) : start])
    return [w.lower() for w in words if not w.isdigit()][-n:]


def _word_after(text: str, end: int) -> str:
    m = re.match(r"\s*([A-Za-z]+|%|/|x)", text[end : end + 20])
    return m.group(1).lower() if m else ""


def _after_history(text: str, start: int) -> bool:
    m = re.search(r"([A-Za-z]+)[ \t]+(?:in[ \t]+)?$", text[max(0, start - 30) : start])
    return m is not None and m.group(1).lower() in _HISTORY


def _month_day(text: str) -> Iterator[Span]:
    for m in _MONTH_DAY.finditer(text):
        before = _words_before(text, m.start())
        after = _word_after(text, m.end())
        mo, d = int(m.group("m")), int(m.group("d"))
        strong_cue = bool(before) and before[-1] in _DATE_CUES - {"of", "in", "by", "from"}
        if any(w in _RATIO_CUES for w in before) or after in ("%", "/", "x", "peep"):
            continue
        near = set(_words_before(text, m.start(), 4)) | {after}
        if d == 10 and mo <= 10 and (near & _PAIN_CUES or text[: m.start()].rstrip().endswith("#")):
            continue  # 5/10: a pain score
        if set(re.split(r"[/ ]", " ".join(before))) & _VENT_WORDS or after in _VENT_WORDS:
            continue  # 10/5, 5/5: pressure support over PEEP
        if re.match(r"\s*,?\s*\d+\s*%", text[m.end() : m.end() + 12]):
            continue  # 5/5, 40%
        if m.group("sep") == "-":
            # ``2-3 times``, ``12-18``: a range unless a date word stands right before it
            if not strong_cue or after in _RANGE_AFTER:
                continue
        elif (mo < d <= 4 or after in _FRACTION_AFTER) and not (
            before and before[-1] in _DATE_CUES - {"of", "in"}
        ):
            continue  # 1/2, 2/3, 3/4: fractions
        yield Span(m.start(), m.end(), "DATE", m.group(0))


def _years(text: str) -> Iterator[Span]:
    for m in _YEAR4.finditer(text):
        # 1900-2059 are also clock times (``@ 2000``, ``1900 - 0700``): a year needs a year word
        # before it (``MI 1992``, ``in 2004``, ``of 1993``, ``it is 2020``) or a decade's ``s``
        before = _words_before(text, m.start(), 1)
        prev_char = text[: m.start()].rstrip()[-1:]
        year_word = bool(before) and before[-1] in _YEAR_CUES and prev_char.isalpha()
        after = _word_after(text, m.end())
        glued = text[m.end() : m.end() + 3].lstrip(" \t").startswith(("-", ">"))
        if glued or after in (
            "hrs",
            "hr",
            "h",
            "am",
            "pm",
            "cc",
            "ml",
            "mg",
            "units",
            "u",
            "to",
            "till",
            "until",
        ):
            continue  # 2000 to 2400, 1900 - 0700: a shift, not a year
        if year_word or m.group(0).lower().endswith("s") or prev_char == "'" or int(m.group("y")) < 1900:
            yield Span(m.start(), m.end(), "DATE", m.group(0))
    for m in _YEAR2_QUOTED.finditer(text):
        g = "a" if m.group("a") else "b"
        if g == "b" and not _after_history(text, m.start()):
            continue  # 30' is thirty feet unless a history item stands before it (CVA 74')
        yield Span(m.start(g), m.end(g), "DATE", m.group(g))
    for m in _YEAR2.finditer(text):
        if _after_history(text, m.start()) and _word_after(text, m.end()) in ("", "and", "with", "s"):
            nxt = text[m.end() : m.end() + 2]
            if (not nxt[:1].isdigit() and not nxt.startswith(("%", "/", ".", "-"))) or nxt.startswith(
                (". ", ".\n")
            ):
                yield Span(m.start(), m.end(), "DATE", m.group(0))


def _written_dates(text: str) -> Iterator[Span]:
    for m in _WRITTEN.finditer(text):
        s = m.group(0).rstrip(" ,.")
        month = re.search(r"[A-Za-z]{3,}", s)
        if month is None:
            continue
        word = month.group(0).lower()
        if not re.search(r"\d", s) and (word == "may" or not re.fullmatch(_MONTH_FULL, word)):
            # an abbreviation (or "may") alone is a date only after a time word: "in sept."
            before = _words_before(text, m.start(), 1)
            if word == "may" or not (before and before[-1] in _MONTH_ALONE_CUES):
                continue
        yield Span(m.start(), m.start() + len(s), "DATE", s)


def find_pattern_spans(text: str) -> list[Span]:
    """Every shaped identifier in ``text`` (overlaps allowed; the engine merges them)."""
    spans: list[Span] = []
    for rx in (_FULL_NUMERIC, _MONTH_YEAR):
        spans += [
            Span(m.start(), m.end(), "DATE", m.group(0))
            for m in rx.finditer(text)
            if _word_after(text, m.end()) not in ("%", "/")
        ]
    spans += _month_day(text)
    spans += _years(text)
    spans += _written_dates(text)
    for m in _ORDINAL.finditer(text):
        if _word_after(text, m.end()) not in _ORDINAL_NOT_DATE:
            spans.append(Span(m.start("d"), m.end("d"), "DATE", m.group("d")))
    for rx in (_PHONE, _PHONE_INTL):
        spans += [Span(m.start(), m.end(), "PHONE", m.group(0)) for m in rx.finditer(text)]
    for m in _PHONE_CUE.finditer(text):
        value = m.group("id").rstrip()
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 5:
            spans.append(Span(m.start("id"), m.start("id") + len(value), "PHONE", value))
    for rx in (_AGE, _AGE_LINE):
        spans += [Span(m.start("id"), m.end("id"), "AGE", m.group("id")) for m in rx.finditer(text)]
    spans += [Span(m.start(), m.end(), "EMAIL", m.group(0)) for m in _EMAIL.finditer(text)]
    for m in _ID.finditer(text):
        value = m.group("id")
        if m.group(0).startswith("#") and (
            sum(c.isdigit() for c in value) < 2 or re.search(r"\d(?:fr|french|ett|mm|g|x\d)", value, re.I)
        ):
            continue  # #8ETT, #20fr, #20x2: tube sizes and counts
        kind = (
            "ID"
            if m.group(0).startswith("#") or re.match(r"(?i)ref|policy|acct|account", m.group(0))
            else "MRN"
        )
        spans.append(Span(m.start("id"), m.end("id"), kind, value))
    spans += [Span(m.start(), m.end(), "MRN", m.group(0)) for m in _LONG_NUMBER.finditer(text)]
    spans += [Span(m.start(), m.end(), "ADDRESS", m.group(0)) for m in _ADDRESS.finditer(text)]
    return spans
