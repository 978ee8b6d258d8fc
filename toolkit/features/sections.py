"""Sections and sentences of a clinical note.

**Sections.** A known header ("PAST MEDICAL HISTORY:", "Social history:", "PMH:", "A/P:") starts a
section wherever a line, a sentence or a run of two or more spaces leaves off, in any case; an
unknown upper-case header ("VITALS:") starts one only where it stands alone on its line.  An
upper-case label followed by text on the same line ("NECK: SUPPLE", "LUNGS: clear") is not a
header: it belongs to the sentence, so a finding written that way is still found.  Each section
name maps to a canonical one, and some carry a default attribute (:data:`SECTION_DEFAULTS`): past
medical, surgical and social history, and allergies are *historical*; family history is *family*
and *historical*; instructions are *hypothetical*.

**Sentences** end at ``.``, ``!`` or ``?`` before whitespace and at blank lines -- not after
abbreviations ("Dr.", "p.o.", "b.i.d.", "vs."), single capitals ("C. diff", initials), decimals
("2.5 mg") or list numbers ("1. CHF"); a line break ends one only before a list item ("- CHF",
"2) CHF"), so a hard-wrapped sentence stays whole.
"""

from __future__ import annotations

import re

#: Header text (lower case, single spaces, without the colon) -> canonical section name.
SECTION_NAMES: dict[str, str] = {
    "chief complaint": "chief_complaint",
    "cc": "chief_complaint",
    "reason for admission": "chief_complaint",
    "history of present illness": "hpi",
    "hpi": "hpi",
    "present illness": "hpi",
    "past medical history": "pmh",
    "pmh": "pmh",
    "medical history": "pmh",
    "past history": "pmh",
    "past medical and surgical history": "pmh",
    "problem list": "pmh",
    "past surgical history": "psh",
    "psh": "psh",
    "surgical history": "psh",
    "family history": "family_history",
    "fh": "family_history",
    "fhx": "family_history",
    "family medical history": "family_history",
    "social history": "social_history",
    "sh": "social_history",
    "social hx": "social_history",
    "habits": "social_history",
    "tobacco": "social_history",
    "alcohol": "social_history",
    "review of systems": "ros",
    "ros": "ros",
    "physical exam": "exam",
    "physical examination": "exam",
    "exam": "exam",
    "examination": "exam",
    "medications": "medications",
    "meds": "medications",
    "current medications": "medications",
    "home medications": "medications",
    "medications on admission": "medications",
    "discharge medications": "medications",
    "allergies": "allergies",
    "allergy": "allergies",
    "drug allergies": "allergies",
    "assessment and plan": "assessment_plan",
    "assessment/plan": "assessment_plan",
    "a/p": "assessment_plan",
    "impression and plan": "assessment_plan",
    "assessment": "assessment_plan",
    "plan": "assessment_plan",
    "discharge instructions": "instructions",
    "instructions": "instructions",
    "patient instructions": "instructions",
    "follow-up instructions": "instructions",
    "followup instructions": "instructions",
    "hospital course": "hospital_course",
    "discharge plan": "discharge_plan",
    "diagnosis": "diagnosis",
    "diagnoses": "diagnosis",
    "final diagnosis": "diagnosis",
    "discharge diagnosis": "diagnosis",
    "discharge diagnoses": "diagnosis",
    "admission diagnosis": "diagnosis",
    "admitting diagnosis": "diagnosis",
    "preoperative diagnosis": "diagnosis",
    "postoperative diagnosis": "diagnosis",
    "findings": "findings",
    "impression": "impression",
    "procedure": "procedure",
    "complications": "complications",
    "labs": "labs",
    "laboratory data": "labs",
}
#: Sections whose mentions default to attributes (explicit triggers and terminations override).
SECTION_DEFAULTS: dict[str, tuple[str, ...]] = {
    "pmh": ("historical",),
    "psh": ("historical",),
    "social_history": ("historical",),
    "allergies": ("historical",),
    "family_history": ("family", "historical"),
    "instructions": ("hypothetical",),
}

_KNOWN = "|".join(
    r"\s+".join(re.escape(w) for w in name.split()) for name in sorted(SECTION_NAMES, key=len, reverse=True)
)
# a known header: at a line start, after a sentence end or after 2+ spaces; any case
_KNOWN_HEADER = re.compile(
    rf"(?:^|(?<=[.!?;]\s)|(?<=\s\s))[ \t]*({_KNOWN})[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE
)
# an unknown header: upper case, alone on its line
_OWN_LINE_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z0-9 /&()-]{1,60}):[ \t]*$\n?", re.MULTILINE)


def canonical_section(title: str) -> str:
    key = " ".join(title.lower().split())
    return SECTION_NAMES.get(key) or re.sub(r"[^a-z0-9]+", "_", key).strip("_")


def sections(text: str) -> list[tuple[str, int, int]]:
    """``(section name, body start, body end)`` for each section; text before the first header is 'header'."""
    heads = [(m.start(), m.end(), canonical_section(m.group(1))) for m in _KNOWN_HEADER.finditer(text)]
    heads += [
        (m.start(), m.end(), canonical_section(m.group(1)))
        for m in _OWN_LINE_HEADER.finditer(text)
        if not any(s <= m.start() < e for s, e, _ in heads)
    ]
    out: list[tuple[str, int, int]] = []
    name, start = "header", 0
    for s, e, canonical in sorted(heads):
        if s < start:
            continue
        out.append((name, start, s))
        name, start = canonical, e
    out.append((name, start, len(text)))
    return [s for s in out if s[2] > s[1]]


_ABBREV = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "st",
        "vs",
        "v",
        "e.g",
        "i.e",
        "no",
        "approx",
        "pt",
        "fig",
        "etc",
        "p.o",
        "po",
        "b.i.d",
        "t.i.d",
        "q.i.d",
        "q.d",
        "q.h",
        "h.s",
        "a.m",
        "p.m",
        "mg",
        "mcg",
        "ml",
        "cm",
        "mm",
        "kg",
        "hr",
        "hrs",
        "min",
        "sec",
        "inc",
        "co",
        "dept",
        "univ",
        "jr",
        "sr",
        "wt",
        "ht",
        "temp",
        "resp",
        "ref",
        "ext",
        "sig",
        "disp",
    ]
)
# a blank line, or a line break before a list item ("- CHF", "* CHF", "2) CHF"), ends a sentence
_SENT_END = re.compile(r"[.!?]+(?=\s)|\n[ \t]*\n+|\n(?=[ \t]*(?:[-*\u2022]|\d{1,2}[.)])\s)")


def _keeps_going(text: str, start: int, end: int) -> bool:
    """Whether the '.' ending ``text[start:end]`` belongs to an abbreviation, an initial or a list number."""
    word = re.search(r"(\S+)\.$", text[start:end])
    if word is None:
        return False
    w = word.group(1).lower().lstrip("(")
    if w in _ABBREV or re.fullmatch(r"[a-z]", w) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", w):
        return True
    # "1. CHF" at the start of a sentence or after a colon: a list number, not a sentence end
    before = text[start : end - len(word.group(0))].rstrip()
    return bool(re.fullmatch(r"\d{1,2}", w)) and (before == "" or before.endswith((":", "\n")))


def sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans in ``text[start:end]`` (see the module docstring for where they end)."""
    out: list[tuple[int, int]] = []
    s = start
    for m in _SENT_END.finditer(text, start, end):
        if m.group(0)[0] == "." and _keeps_going(text, s, m.start() + 1):
            continue
        if text[s : m.end()].strip():
            out.append((s, m.end()))
        s = m.end()
    if text[s:end].strip():
        out.append((s, end))
    return out
