"""Sections, sentences and a ConText-style assertion algorithm for clinical notes.

ConText (Harkema et al., J Biomed Inform 2009) decides whether a concept mention is negated,
uncertain, historical or about someone else from *trigger* phrases and their *scope*:

* a trigger has a category (negated, possible, historical, family) and a direction: ``forward``
  triggers ("no", "denies", "history of") cover the text after them, ``backward`` triggers ("was
  ruled out", "fully recovered") the text before them, ``both`` triggers (relatives: "mother") both;
* a scope runs to the sentence boundary, and stops early at a *termination* term ("but",
  "however", ";");
* *pseudo-triggers* ("no change", "not only") contain a trigger word but are not triggers;
* the section a mention sits in can set a default (every mention under FAMILY HISTORY is about
  family).

When several categories cover a mention the first of :data:`PRIORITY` wins: "No prior cardiac
arrest" is negated, not historical; "Father had no MI" is family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ASSERTIONS = ("present", "negated", "possible", "historical", "family")
PRIORITY = ("family", "negated", "possible", "historical")

# (phrase regex, category, direction).  Phrases are matched case-insensitively on word boundaries.
RULES: tuple[tuple[str, str, str], ...] = (
    # negation
    (
        r"no|not|without|denies|denied|deny|negative for|no evidence of|no history of|no signs? of",
        "negated",
        "forward",
    ),
    (r"free of|absence of|never had|rules? out for", "negated", "forward"),
    (
        r"(?:was|is|were|has been|been)? ?ruled out|(?:was|is|has been)? ?excluded|absent|not seen",
        "negated",
        "backward",
    ),
    # uncertainty
    (
        r"possible|possibly|probable|probably|suspected|suspicion of|concern for|concerning for",
        "possible",
        "forward",
    ),
    (
        r"cannot rule out|cannot exclude|can ?not be excluded|may have|questionable|rule out|r/o|versus|vs\.?",
        "possible",
        "forward",
    ),
    (
        r"(?:is|was) suspected|not ruled out|not excluded|cannot be (?:ruled out|excluded)",
        "possible",
        "backward",
    ),
    # history
    (
        r"history of|hx of|h/o|prior|previous|previously|s/p|status post|remote|in the past",
        "historical",
        "forward",
    ),
    (r"(?:fully )?recovered|resolved|in the past", "historical", "backward"),
    # family
    (
        r"family history(?: of)?|fhx|mother|father|brother|sister|sibling|parents?|grandmother|grandfather",
        "family",
        "both",
    ),
    (r"(?:paternal |maternal )?(?:uncle|aunt|cousin)|son|daughter", "family", "both"),
)
PSEUDO = (
    r"no change|no increase|not only|no further|not necessarily|without difficulty|gram negative|no longer"
)
TERMINATE = r"but|however|although|though|yet|except|aside from|apart from|which|whose|;"


def _alternation(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/])(?:{pattern})(?![\w/])", re.IGNORECASE)


_RULES = tuple((_alternation(p), cat, direction) for p, cat, direction in RULES)
_PSEUDO = _alternation(PSEUDO)
_TERMINATE = re.compile(rf"(?<![\w])(?:{TERMINATE.replace('|;', '')})(?![\w])|;", re.IGNORECASE)


@dataclass(frozen=True)
class Trigger:
    start: int
    end: int
    category: str
    direction: str


def find_triggers(sentence: str, blocked: list[tuple[int, int]]) -> list[Trigger]:
    """Triggers in a sentence, longest first where they overlap; none inside ``blocked`` spans."""
    pseudo = [(m.start(), m.end()) for m in _PSEUDO.finditer(sentence)]
    found: list[Trigger] = []
    for rx, cat, direction in _RULES:
        for m in rx.finditer(sentence):
            if m.end() > m.start():
                found.append(Trigger(m.start(), m.end(), cat, direction))
    found.sort(key=lambda t: (t.start, -(t.end - t.start)))
    kept: list[Trigger] = []
    taken = [*pseudo, *blocked]
    for t in sorted(found, key=lambda t: -(t.end - t.start)):
        if any(t.start < e and s < t.end for s, e in taken):
            continue
        kept.append(t)
        taken.append((t.start, t.end))
    return sorted(kept, key=lambda t: t.start)


def assertion(
    span: tuple[int, int],
    triggers: list[Trigger],
    terminations: list[int],
    *,
    section_default: str | None = None,
) -> str:
    """The assertion of the mention at ``span`` given a sentence's triggers and termination offsets."""
    cats: set[str] = set()
    if section_default is not None:
        cats.add(section_default)
    s, e = span
    for t in triggers:
        forward = t.direction in ("forward", "both") and t.end <= s
        if forward and not any(t.end <= x < s for x in terminations):
            cats.add(t.category)
        backward = t.direction in ("backward", "both") and t.start >= e
        if backward and not any(e <= x < t.start for x in terminations):
            cats.add(t.category)
    for c in PRIORITY:
        if c in cats:
            return c
    return "present"


def terminations(sentence: str) -> list[int]:
    return [m.start() for m in _TERMINATE.finditer(sentence)]


# --- sections and sentences ------------------------------------------------------------------
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&()-]{2,60}):[ \t]*", re.MULTILINE)

#: Header text (upper case, without the colon) -> canonical section name.
SECTION_NAMES: dict[str, str] = {
    "CHIEF COMPLAINT": "chief_complaint",
    "HISTORY OF PRESENT ILLNESS": "hpi",
    "HPI": "hpi",
    "PAST MEDICAL HISTORY": "pmh",
    "PMH": "pmh",
    "PAST SURGICAL HISTORY": "psh",
    "FAMILY HISTORY": "family_history",
    "FH": "family_history",
    "SOCIAL HISTORY": "social_history",
    "REVIEW OF SYSTEMS": "ros",
    "ROS": "ros",
    "PHYSICAL EXAM": "exam",
    "PHYSICAL EXAMINATION": "exam",
    "ASSESSMENT AND PLAN": "assessment",
    "ASSESSMENT": "assessment",
    "PLAN": "plan",
    "HOSPITAL COURSE": "hospital_course",
    "DISCHARGE PLAN": "discharge_plan",
    "DISCHARGE MEDICATIONS": "medications",
    "MEDICATIONS": "medications",
    "FINDINGS": "findings",
    "IMPRESSION": "impression",
    "PROCEDURE": "procedure",
    "COMPLICATIONS": "complications",
}
#: Sections whose mentions default to an assertion.
SECTION_DEFAULTS: dict[str, str] = {"family_history": "family"}


def sections(text: str) -> list[tuple[str, int, int]]:
    """``(section name, body start, body end)`` for each section; text before the first header is 'header'.

    Unknown upper-case headers become sections named after themselves (lower case, underscores).
    """
    out: list[tuple[str, int, int]] = []
    name, start = "header", 0
    for m in _HEADER.finditer(text):
        title = m.group(1).strip()
        canonical = SECTION_NAMES.get(title) or re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
        out.append((name, start, m.start()))
        name, start = canonical, m.end()
    out.append((name, start, len(text)))
    return [s for s in out if s[2] > s[1]]


_ABBREV = frozenset({"dr", "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "no", "approx", "pt", "fig", "etc"})
_SENT_END = re.compile(r"[.!?]+(?=\s)|\n+")


def sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans in ``text[start:end]``: split at line breaks and at . ! ? before whitespace,
    except after common abbreviations (Dr., St., vs., e.g.)."""
    out: list[tuple[int, int]] = []
    s = start
    for m in _SENT_END.finditer(text, start, end):
        if m.group(0)[0] == ".":
            word = re.search(r"([\w.]+)$", text[s : m.start()])
            if word and word.group(1).lower() in _ABBREV:
                continue
        if text[s : m.end()].strip():
            out.append((s, m.end()))
        s = m.end()
    if text[s:end].strip():
        out.append((s, end))
    return out
