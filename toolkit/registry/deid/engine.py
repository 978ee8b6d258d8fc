"""The note de-identifier: pattern recognizers plus the name/place classifier, applied to all
notes of a person together (a word the classifier is sure of in one note marks the same word
in that person's other notes: ``Dr. Healey`` early on catches a bare ``healey`` later).

Steps, for one person's notes:

1. words and their features (:mod:`.features`); one probability table from the model;
2. words at or above the ``mark`` threshold are identifiers (name or place, by the larger
   probability); clinical words on :data:`KEEP` never are;
3. sure words (``spread``) mark their other occurrences in the person's notes (``echo``);
4. single-letter initials next to a name join it (``W. MAROTTA``), site terms are marked;
5. neighbouring marked words of one kind become one span; shaped identifiers
   (:mod:`.patterns`) are added and overlaps merged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from toolkit.registry.deid.features import CREDENTIALS, RELATIVES, TITLES, Token, tokenize, word_features
from toolkit.registry.deid.lexicon import Lexicon, load_lexicon
from toolkit.registry.deid.model import LABELS, TokenModel, load_model
from toolkit.registry.deid.patterns import find_pattern_spans
from toolkit.registry.deid.spans import Span, merge_spans

#: words that are never names or places whatever their context: English function words,
#: clinical abbreviations, units, devices and scales (``data/keep_words.json``), and the cue
#: words themselves.  Names that are also drugs or devices (``Foley``) are not here: context
#: decides.  (``rehab``, ``memorial`` ... are not here either: they are part of place names.)
KEEP = (
    frozenset(
        w
        for words in json.loads((Path(__file__).parent / "data" / "keep_words.json").read_text()).values()
        for w in words
    )
    | TITLES
    | CREDENTIALS
    | RELATIVES
) - {"rehab", "hospice"}
#: words that end a facility's name and join the marked place before them
INSTITUTION_SUFFIXES = frozenset(
    [
        "rehab",
        "rehabilitation",
        "hospital",
        "hosp",
        "memorial",
        "regional",
        "medical",
        "center",
        "centre",
        "ctr",
        "clinic",
        "house",
        "manor",
        "adventist",
        "infirmary",
        "institute",
        "campus",
        "square",
        "beach",
        "shore",
        "air",
        "general",
    ]
)
_RESIDENCE = frozenset(["lives", "living", "lived", "resides", "reside", "moved", "vacationing", "visiting"])
_TITLE_WORDS = frozenset(["Dr", "DR", "dr", "Mr", "MR", "Mrs", "MRS", "Ms", "MS", "Miss", "Prof", "Mx"])
_TITLE_BEFORE = re.compile(r"(?i)\b(?:dr|mr|mrs|ms|miss|prof|mx)\.?[ \t]+$")
_HEADER_CUE = re.compile(
    r"(?i)\b(?:patient(?:'s)? name|patient|name|attending|signed|dictated by|reported by|referred by|"
    r"electronically signed by)\s*:[ \t]*|(?i:\b(?:dictated|reported|referred|signed|seen) by[ \t]+)"
)
_CAP_WORD = re.compile(r"[A-ZÀ-ÖØ-Þ][^\s,;:()\[\]<>\"|/=]*")
_FACILITY = re.compile(
    r"\b(?:Hospital|HOSPITAL|hospital|Hosp|HOSP|hosp|Clinic|CLINIC|Centre|CENTRE|Center|CENTER|Infirmary|"
    r"INFIRMARY|Institute|Medical Group|Hospice|HOSPICE)\b"
)
#: words in facility names (Holy Cross, Sacred Heart, General, Memorial ...)
INSTITUTION_WORDS = frozenset(
    [
        "st",
        "saint",
        "holy",
        "sacred",
        "heart",
        "cross",
        "mercy",
        "memorial",
        "general",
        "regional",
        "university",
        "children's",
        "samaritan",
        "adventist",
        "baptist",
        "methodist",
        "presbyterian",
        "lutheran",
        "union",
        "community",
        "county",
        "shore",
        "harbor",
        "mount",
        "mt",
        "providence",
        "deaconess",
        "veterans",
    ]
)
_ABBREVIATED = frozenset(["st", "mt", "ft"])
_WORD_BEFORE = re.compile(r"[A-Za-zÀ-ÿ][\w'À-ÿ-]*\.?")
_FACILITY_FIRST = re.compile(
    r"\b(?:H[oô]pital|Hospital|Klinikum|Clinique|Clinica|HÃ´pital)[ \t]+[A-ZÀ-ÖØ-Þ][\w'À-ÿ-]*"
    r"(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'À-ÿ-]*)?"
)
#: kinship words whose next word is a name (not "family", "friends": "family members")
_KIN = frozenset(
    [
        "son",
        "sons",
        "daughter",
        "daughters",
        "dtr",
        "dau",
        "wife",
        "husband",
        "hus",
        "spouse",
        "sister",
        "sisters",
        "sis",
        "brother",
        "brothers",
        "bro",
        "mother",
        "mom",
        "father",
        "dad",
        "aunt",
        "uncle",
        "niece",
        "nephew",
        "cousin",
        "friend",
        "grandson",
        "granddaughter",
        "grandaughter",
        "proxy",
        "hcp",
        "guardian",
        "partner",
        "fiance",
        "fiancee",
        "girlfriend",
        "boyfriend",
        "neighbor",
        "stepdaughter",
        "stepson",
    ]
)
_NAME_TITLES = frozenset(["dr", "drs", "mr", "mrs", "ms", "miss"])
#: words that start a place name and join the marked word after them (``St. Agnes``)
PLACE_PREFIXES = frozenset(
    ["st", "saint", "mt", "mount", "ft", "fort", "san", "santa", "los", "las", "new", "port", "lake"]
)
_JOIN_GAP = re.compile(r"[ \t.'-]*")


@dataclass(frozen=True)
class SiteTerms:
    """A site's own names (staff, local places) that are always identifiers: one per line in
    a file, ``NAME<TAB>term`` or ``LOCATION<TAB>term`` (a bare term is a name)."""

    terms: dict[str, str]

    @staticmethod
    def from_lines(lines: Iterable[str]) -> SiteTerms:
        terms: dict[str, str] = {}
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, _, term = line.partition("\t") if "\t" in line else ("NAME", "", line)
            terms[Lexicon.key(term.strip())] = kind.strip().upper()
        return SiteTerms(terms)


class NoteDeidentifier:
    """Find identifiers in notes.  ``find(text)`` for one note, ``find_many(texts)`` for all
    notes of one person (better: words seen clearly once are found everywhere)."""

    def __init__(
        self,
        model: TokenModel | None = None,
        *,
        site_terms: SiteTerms | None = None,
        names: Iterable[str] = (),
        lexicon: Lexicon | None = None,
    ) -> None:
        self.model = model or load_model()
        self.lexicon = lexicon or load_lexicon()
        self.site_terms = site_terms or SiteTerms({})
        self.names = [n for n in names if len(n) >= 3]

    def find(self, text: str) -> list[Span]:
        return self.find_many([text])[0]

    def prepare(self, text: str) -> tuple[list[Token], np.ndarray]:
        """A note's words and feature rows (computed once, reusable across models)."""
        tokens = tokenize(text)
        return tokens, word_features(text, tokens, self.lexicon)

    def find_many(
        self, texts: Sequence[str], *, prepared: Sequence[tuple[list[Token], np.ndarray]] | None = None
    ) -> list[list[Span]]:
        prepared = prepared if prepared is not None else [self.prepare(t) for t in texts]
        tables = [p[1] for p in prepared]
        probs = self.model.predict(np.vstack(tables)) if tables else np.zeros((0, len(LABELS)))
        split = np.cumsum([len(p[0]) for p in prepared])[:-1]
        per_note = np.split(probs, split) if len(texts) else []
        return self.spans_from(texts, [p[0] for p in prepared], per_note)

    def spans_from(
        self, texts: Sequence[str], tokens: list[list[Token]], probs: list[np.ndarray]
    ) -> list[list[Span]]:
        """Steps 2-5 from the model's probabilities (one array per note)."""
        marks = self._decide(tokens, probs)
        out = []
        for text, toks, mark in zip(texts, tokens, marks, strict=True):
            spans = _word_spans(text, toks, mark) + _patterns(text) + self._header_names(text)
            spans += self._institutions(text)
            spans = _with_titles(text, spans)
            for name in self.names:
                spans += [
                    Span(m.start(), m.end(), "NAME", m.group(0))
                    for m in re.finditer(rf"(?i)(?<!\w){re.escape(name)}(?!\w)", text)
                ]
            out.append(merge_spans(text, spans))
        return out

    def _decide(self, tokens: list[list[Token]], probs: list[np.ndarray]) -> list[list[str | None]]:
        marks = [self._mark_words(toks, p) for toks, p in zip(tokens, probs, strict=True)]
        sure = self._sure_words(tokens, probs)
        th = self.model.thresholds
        for toks, p, row in zip(tokens, probs, marks, strict=True):
            for i, (t, pr) in enumerate(zip(toks, p, strict=True)):
                k = self.lexicon.key(t.text)
                if row[i] is None and k in sure and 1.0 - float(pr[0]) >= th.echo:
                    row[i] = sure[k]
            _join_neighbours(toks, row)
            _join_suffixes(toks, row)
            self._residence(toks, row)
            self._cued_names(toks, row)
            self._drop_states(toks, row)
        return marks

    def _mark_words(self, toks: list[Token], p: np.ndarray) -> list[str | None]:
        """Step 2: words over the threshold of their kind, and site terms."""
        th = self.model.thresholds
        row: list[str | None] = []
        for t, pr in zip(toks, p, strict=True):
            k = self.lexicon.key(t.text)
            kind = None
            if k in self.site_terms.terms:
                kind = self.site_terms.terms[k]
            elif t.is_word and k not in KEEP:
                label = LABELS[1 + int(np.argmax(pr[1:]))]
                ident = 1.0 - float(pr[0])
                # a lone letter is a name only when the model is sure (else it joins a name, step 4)
                needed = th.spread if len(k) == 1 else th.mark_place if label == "LOCATION" else th.mark
                if ident >= needed:
                    kind = label
            row.append(kind)
        return row

    def _sure_words(self, tokens: list[list[Token]], probs: list[np.ndarray]) -> dict[str, str]:
        """Step 3: words the model is sure of somewhere in the person's notes."""
        sure: dict[str, str] = {}
        for toks, p in zip(tokens, probs, strict=True):
            for t, pr in zip(toks, p, strict=True):
                k = self.lexicon.key(t.text)
                if (
                    t.is_word
                    and len(k) > 1
                    and k not in KEEP
                    and 1.0 - float(pr[0]) >= self.model.thresholds.spread
                ):
                    sure.setdefault(k, LABELS[1 + int(np.argmax(pr[1:]))])
        return sure

    def _cued_names(self, toks: list[Token], row: list[str | None]) -> None:
        """Step 4d: a word right after a relative or a title (``husband milovan``, ``Son, Ed,``,
        ``DR. KOH``), after an initial (``D. Phyl``), or right after a marked first name
        (``LISA ROSSETTI``).  It must not be a common English word, unless it is a census name
        written with a capital in a note that is not all capitals (``son Rob``, not ``wife will``)."""
        lex = self.lexicon
        words = [i for i, t in enumerate(toks) if t.is_word]
        for n in range(1, len(words)):
            i, j = words[n], words[n - 1]
            word = toks[i].text
            k = lex.key(word)
            if row[i] is not None or k in KEEP or len(k) < 2:
                continue
            rare = k not in lex.common_words
            named = (k in lex.first_names or k in lex.surnames) and word[0].isupper() and not word.isupper()
            between = "".join(t.text for t in toks[j + 1 : i])
            prev = toks[j].text.lower()
            if (prev in _KIN and between in ("", ",")) or (prev in _NAME_TITLES and between in ("", ".")):
                hit = rare or named or (prev in _NAME_TITLES and (k in lex.surnames or k in lex.first_names))
            elif len(prev) == 1 and prev not in "lr" and between == "." and word[0].isupper():
                hit = rare
                if hit and row[j] is None:
                    row[j] = "NAME"  # D. Phyl: the initial too
            else:
                hit = row[j] == "NAME" and between == "" and rare and toks[i].start - toks[j].end == 1
            if hit:
                row[i] = "NAME"

    def _residence(self, toks: list[Token], row: list[str | None]) -> None:
        """Step 4c: a town after ``lives ... in`` (``lives with son and family in Rockville``)."""
        words = [i for i, t in enumerate(toks) if t.is_word]
        for n, i in enumerate(words[1:], 1):
            k = self.lexicon.key(toks[i].text)
            if row[i] is not None or k in KEEP or toks[words[n - 1]].text.lower() != "in":
                continue
            recent = {toks[j].text.lower() for j in words[max(0, n - 7) : n - 1]}
            if recent & _RESIDENCE and (k in self.lexicon.places or k not in self.lexicon.common_words):
                row[i] = "LOCATION"

    def _header_names(self, text: str) -> list[Span]:
        """Capitalised words after a header cue (``Patient: Nils Petrov``, ``Signed: Dr. Mei
        Chen``); a cue needs its colon or ``by``, so ``PT DENIES PAIN`` starts no name."""
        out = []
        for m in _HEADER_CUE.finditer(text):
            words: list[re.Match[str]] = []
            pos = m.end()
            for w in _CAP_WORD.finditer(text, pos):
                gap = text[pos : w.start()]
                if (words and gap != " ") or (not words and gap.strip(" \t")):
                    break
                if self.lexicon.key(w.group(0)) in KEEP or w.group(0).rstrip(".") in _TITLE_WORDS:
                    if words:
                        break
                    pos = w.end()
                    continue
                words.append(w)
                pos = w.end()
                if len(words) == 3:
                    break
            if words:
                out.append(
                    Span(words[0].start(), words[-1].end(), "NAME", text[words[0].start() : words[-1].end()])
                )
        return out

    def _institutions(self, text: str) -> list[Span]:
        """``Lakeside University Clinic``, ``Hôpital Saint-Louis``: capitalised words before (or
        after) a facility word.  In capitals (``CALVERT HOSPITAL``) only words that are not
        common English count, so ``TRANSFER FROM`` does not join."""
        out = []
        for m in _FACILITY.finditer(text):
            upper, lower = m.group(0).isupper(), m.group(0).islower()
            start = m.start()
            for w in reversed(list(_WORD_BEFORE.finditer(text, max(0, m.start() - 80), m.start()))):
                if w.end() != start and not re.fullmatch(r"[ \t]", text[w.end() : start]):
                    break
                if not self._facility_word(text, w, upper=upper, lower=lower):
                    break
                start = w.start()
            if start < m.start():
                out.append(Span(start, m.end(), "INSTITUTION", text[start : m.end()]))
        for m in _FACILITY_FIRST.finditer(text):
            out.append(Span(m.start(), m.end(), "INSTITUTION", m.group(0)))
        return out

    def _facility_word(self, text: str, w: re.Match[str], *, upper: bool, lower: bool) -> bool:
        """May this word be part of the facility name that follows it?"""
        word = w.group(0)
        k = self.lexicon.key(word.rstrip("."))
        if (w.start() > 0 and text[w.start() - 1].isalnum()) or (
            word.endswith(".") and k not in _ABBREVIATED
        ):
            return False
        if k in INSTITUTION_WORDS or k in self.lexicon.states:
            return True  # Holy Cross, general hospital, MD Hospital
        if lower:  # "sacred heart hospital": only facility words, places and unknown words
            return k not in KEEP and (k in self.lexicon.places or k not in self.lexicon.common_words)
        before = text[max(0, w.start() - 20) : w.start()].rstrip(" \t")
        abbreviation = re.search(r"(?i)\b(?:st|mt|ft|dr|mr|mrs|ms)\.$", before)
        sentence_start = not before or (before[-1] in ".:;!?\n" and not abbreviation)
        return (
            word[0].isupper()
            and k not in KEEP
            and not (k in self.lexicon.common_words and (upper or sentence_start))
        )

    def _drop_states(self, toks: list[Token], row: list[str | None]) -> None:
        """A US state alone is not an identifier (HIPAA Safe Harbor keeps states); inside a
        marked place name (``U Maryland``) it stays marked."""
        for i, t in enumerate(toks):
            if row[i] == "LOCATION" and self.lexicon.key(t.text) in self.lexicon.states:
                near = [
                    row[j] for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j < len(toks) and toks[j].is_word
                ]
                if not any(near):
                    row[i] = None


@lru_cache(maxsize=4096)
def _patterns(text: str) -> list[Span]:
    # cached: choosing thresholds scores the same notes many times
    return find_pattern_spans(text)


def _with_titles(text: str, spans: list[Span]) -> list[Span]:
    """A name span takes in the title right before it (``Dr. Mei Chen``): the title is kept in
    the output by the replacement, but the span names the whole reference."""
    out = []
    for sp in spans:
        if sp.kind == "NAME":
            m = _TITLE_BEFORE.search(text[max(0, sp.start - 12) : sp.start])
            if m:
                start = sp.start - (len(text[max(0, sp.start - 12) : sp.start]) - m.start())
                sp = Span(start, sp.end, "NAME", text[start : sp.end])
        out.append(sp)
    return out


def _join_neighbours(toks: list[Token], row: list[str | None]) -> None:
    """Step 4: a single letter (``W.``, ``U Maryland``) or a place prefix (``St. Agnes``) next to
    a marked word is part of it; digits glued to a marked word (``QUARTERMAIN7``) too."""
    for i, t in enumerate(toks):
        if row[i] is not None:
            continue
        if t.text.isdigit() and i > 0 and row[i - 1] is not None and toks[i - 1].end == t.start:
            row[i] = row[i - 1]
            continue
        single = t.is_word and len(t.text) == 1
        prefix = t.is_word and t.text.lower() in PLACE_PREFIXES
        if not (single or prefix):
            continue
        for j in (i + 1, i + 2) if prefix else (i + 1, i + 2, i - 1, i - 2):
            if 0 <= j < len(toks) and row[j] is not None and toks[j].is_word:
                between = toks[min(i, j) + 1 : max(i, j)]
                if all(b.text == "." for b in between):
                    row[i] = row[j]
                    break


def _join_suffixes(toks: list[Token], row: list[str | None]) -> None:
    """Step 4b: a facility word right after a marked place is part of its name
    (``Baltimore Rehab``, ``Sacred Heart Memorial``); a lone letter right after a title is a
    name (``Mr I``, ``Ms S.``)."""
    prev_word = -1
    for i, t in enumerate(toks):
        if not t.is_word:
            if t.text not in "-.":
                prev_word = -1
            continue
        k = t.text.lower()
        if row[i] is None and prev_word >= 0:
            if k in INSTITUTION_SUFFIXES and row[prev_word] == "LOCATION":
                row[i] = "LOCATION"
            elif len(k) == 1 and toks[prev_word].text.lower() in _NAME_TITLES:
                row[i] = "NAME"
        prev_word = i


def _word_spans(text: str, toks: list[Token], row: list[str | None]) -> list[Span]:
    """Step 5: neighbouring marked words of one kind become one span."""
    spans: list[Span] = []
    for t, kind in zip(toks, row, strict=True):
        if kind is None:
            continue
        if not t.is_word and not t.text.isdigit():
            continue
        if spans and spans[-1].kind == kind and _JOIN_GAP.fullmatch(text[spans[-1].end : t.start]):
            last = spans[-1]
            spans[-1] = Span(last.start, t.end, kind, text[last.start : t.end])
        else:
            spans.append(Span(t.start, t.end, kind, t.text))
    return spans
