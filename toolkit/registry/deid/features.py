"""Words of a note and what the name/place classifier sees of each: dictionary membership,
letter case relative to the note, and cue words around it (titles, credentials, relatives,
place words).  No feature holds the word itself, so a fitted model keeps no corpus vocabulary.

The cue lists are written by hand (clinical and nursing usage); they were checked against the
development notes of the PhysioNet corpus, so they count as tuned on those notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from toolkit.registry.deid.lexicon import Lexicon

_LETTERS = "A-Za-zÀ-ÖØ-öø-ÿ"
#: a word (apostrophes joined: O'Rourke), a number, or one other character; hyphenated words
#: are split (``DAUGHTER-KRISSY``: the cue and the name are separate words; ``Forman-Lyons``
#: is joined again when both halves are marked)
TOKEN = re.compile(rf"[{_LETTERS}]+(?:['’][{_LETTERS}]+)*|\d+|[^\s]")

TITLES = frozenset(
    [
        "dr",
        "drs",
        "dr's",
        "doctor",
        "doctors",
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "prof",
        "professor",
        "np",
        "nps",
        "pa",
        "attending",
        "fellow",
        "resident",
        "intern",
        "rn",
        "nurse",
        "rrt",
        "pharmacist",
        "sw",
    ]
)
CREDENTIALS = frozenset(
    [
        "rn",
        "md",
        "np",
        "rrt",
        "pa",
        "lpn",
        "sn",
        "phd",
        "do",
        "crnp",
        "msw",
        "lcsw",
        "licsw",
        "bsn",
        "ccrn",
        "cna",
        "slp",
        "ot",
        "pt",
        "ms",
        "rph",
        "pharmd",
        "nurse",
        "resident",
        "fellow",
        "intern",
        "student",
    ]
)
RELATIVES = frozenset(
    [
        "son",
        "sons",
        "daughter",
        "daughters",
        "dtr",
        "dtrs",
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
        "friends",
        "grandson",
        "granddaughter",
        "grandaughter",
        "grandchild",
        "grandchildren",
        "grandmother",
        "grandfather",
        "proxy",
        "hcp",
        "guardian",
        "partner",
        "fiance",
        "fiancee",
        "girlfriend",
        "boyfriend",
        "neighbor",
        "neighbour",
        "stepdaughter",
        "stepson",
        "sil",
        "dil",
        "children",
        "child",
        "kids",
        "family",
        "visitor",
        "visitors",
        "wife's",
        "husband's",
    ]
)
CONTACT = frozenset(
    [
        "per",
        "by",
        "with",
        "w",
        "to",
        "called",
        "call",
        "paged",
        "page",
        "notified",
        "aware",
        "spoke",
        "spoke",
        "with",
        "told",
        "informed",
        "seen",
        "saw",
        "and",
        "or",
        "from",
        "via",
        "contacted",
        "d/w",
    ]
)
PLACE_AFTER = frozenset(
    [
        "hospital",
        "hosp",
        "hospitals",
        "rehab",
        "rehabilitation",
        "medical",
        "med",
        "center",
        "centre",
        "ctr",
        "clinic",
        "memorial",
        "general",
        "regional",
        "house",
        "manor",
        "nursing",
        "county",
        "university",
        "univ",
        "campus",
        "adventist",
        "square",
        "beach",
        "shore",
        "air",
        "infirmary",
        "institute",
        "street",
        "st",
        "ave",
        "avenue",
        "road",
        "rd",
        "nh",
        "snf",
        "facility",
        "healthcare",
        "health",
        "va",
        "home",
    ]
)
#: words that make up US hospital and facility names (saints, faiths, "memorial" ...)
INSTITUTION_WORDS = frozenset(
    [
        "st",
        "st.",
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
        "bay",
        "valley",
        "mount",
        "mt",
        "good",
        "hope",
        "providence",
        "deaconess",
        "mission",
        "kaiser",
        "veterans",
    ]
)
#: words after a name saying the person did something (``Dr X aware``, ``Suzette called``)
AFTER_NAME = frozenset(
    [
        "aware",
        "notified",
        "paged",
        "called",
        "informed",
        "updated",
        "visited",
        "visiting",
        "phoned",
        "says",
        "states",
        "stated",
        "spoke",
        "reports",
        "reported",
        "present",
        "here",
        "consulted",
        "following",
        "following.",
        "cell",
        "home",
        "work",
        "pager",
        "agrees",
        "agreed",
        "asked",
        "requested",
        "wants",
    ]
)
PLACE_BEFORE = frozenset(
    [
        "to",
        "from",
        "at",
        "in",
        "of",
        "lives",
        "live",
        "living",
        "near",
        "transferred",
        "transfer",
        "transfered",
        "tx'd",
        "admitted",
        "visiting",
        "vacationing",
        "vacation",
        "st",
        "saint",
        "mount",
        "mt",
        "holy",
        "sacred",
        "u",
        "univ",
        "university",
        "greater",
        "north",
        "south",
        "east",
        "west",
        "eastern",
        "western",
        "northern",
        "southern",
    ]
)

FEATURES = (
    "first_freq",
    "surname_freq",
    "in_denylist",
    "in_common",
    "in_place",
    "place_bigram",
    "length",
    "single_letter",
    "joined",
    "is_title_case",
    "is_upper",
    "is_lower",
    "note_upper",
    "capital_in_lower_note",
    "sentence_start",
    "line_start",
    "prev_title",
    "prev_relative",
    "prev_contact",
    "prev_place_before",
    "prev_initial",
    "prev2_title",
    "prev2_relative",
    "next_credential",
    "next2_credential",
    "next_relative",
    "next_place_after",
    "next_initial",
    "prev_namey",
    "next_namey",
    "prev_common",
    "next_common",
    "prev_is_word",
    "next_is_word",
    "relative_near",
    "credential_on_line",
    "short_line",
    "last_lines",
    "followed_by_comma",
    "in_parentheses",
    "unknown",
    "self_place_after",
    "self_institution",
    "next_institution",
    "prev_institution",
    "next2_place_after",
    "next_in_place",
    "prev_in_place",
    "next_after_name",
    "next2_after_name",
    "prev_and_namey",
    "prev_title_strict",
    "lives_near",
)


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str

    @property
    def is_word(self) -> bool:
        return self.text[0].isalpha()


def tokenize(text: str) -> list[Token]:
    return [Token(m.start(), m.end(), m.group(0)) for m in TOKEN.finditer(text)]


def _namey(lex: Lexicon, word: str) -> float:
    k = lex.key(word)
    if not word[0].isalpha() or k in lex.common_words:
        return 0.0
    return 1.0 if (k in lex.first_names or k in lex.surnames or k in lex.name_denylist) else 0.5


def word_features(text: str, tokens: list[Token], lex: Lexicon) -> np.ndarray:
    """One row of :data:`FEATURES` per token (non-words get a row too; the caller skips them)."""
    letters = [c for c in text if c.isalpha()]
    note_upper = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
    words = [i for i, t in enumerate(tokens) if t.is_word]
    pos_in_words = {ti: wi for wi, ti in enumerate(words)}
    keys = [lex.key(t.text) if t.is_word else t.text for t in tokens]
    line_starts = [0, *(m.end() for m in re.finditer(r"\n", text))]
    n_lines = len(line_starts)

    def line_of(offset: int) -> int:
        lo, hi = 0, n_lines - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    nonblank = [
        i
        for i in range(n_lines)
        if text[line_starts[i] : (line_starts[i + 1] if i + 1 < n_lines else len(text))].strip()
    ]
    last_lines = set(nonblank[-2:])
    rows = np.zeros((len(tokens), len(FEATURES)), dtype=np.float32)
    col = {f: j for j, f in enumerate(FEATURES)}

    def word_at(wi: int) -> str:
        return keys[words[wi]] if 0 <= wi < len(words) else ""

    for ti in words:
        t = tokens[ti]
        k = keys[ti]
        wi = pos_in_words[ti]
        r = rows[ti]
        r[col["first_freq"]] = lex.first_frequency(k)
        r[col["surname_freq"]] = lex.surname_frequency(k)
        parts = re.split(r"[-']", k)
        r[col["in_denylist"]] = float(
            k in lex.name_denylist or any(p in lex.name_denylist for p in parts if len(p) > 2)
        )
        r[col["in_common"]] = float(k in lex.common_words)
        r[col["in_place"]] = float(k in lex.places)
        nxt, prv = word_at(wi + 1), word_at(wi - 1)
        r[col["place_bigram"]] = float(f"{k} {nxt}" in lex.places or f"{prv} {k}" in lex.places)
        r[col["length"]] = min(len(t.text), 15)
        r[col["single_letter"]] = float(len(t.text) == 1)
        r[col["joined"]] = float("-" in t.text or "'" in t.text.rstrip("'s"))
        r[col["is_title_case"]] = float(t.text[0].isupper() and not t.text.isupper())
        r[col["is_upper"]] = float(t.text.isupper())
        r[col["is_lower"]] = float(t.text.islower())
        r[col["note_upper"]] = note_upper
        prev_tok = tokens[ti - 1].text if ti > 0 else "\n"
        before = text[tokens[ti - 1].end : t.start] if ti > 0 else "\n"
        sentence_start = ti == 0 or "\n" in before or prev_tok in ".:;!?-"
        r[col["sentence_start"]] = float(sentence_start)
        r[col["capital_in_lower_note"]] = float(
            t.text[0].isupper() and note_upper < 0.5 and not sentence_start
        )
        line = line_of(t.start)
        r[col["line_start"]] = float(not text[line_starts[line] : t.start].strip())
        prev_is_dot_initial = wi >= 1 and len(word_at(wi - 1)) == 1
        r[col["prev_title"]] = float(prv in TITLES)
        r[col["prev_relative"]] = float(prv in RELATIVES)
        r[col["prev_contact"]] = float(prv in CONTACT)
        r[col["prev_place_before"]] = float(prv in PLACE_BEFORE)
        r[col["prev_initial"]] = float(prev_is_dot_initial)
        r[col["prev2_title"]] = float(word_at(wi - 2) in TITLES)
        r[col["prev2_relative"]] = float(word_at(wi - 2) in RELATIVES)
        r[col["next_credential"]] = float(nxt in CREDENTIALS)
        r[col["next2_credential"]] = float(word_at(wi + 2) in CREDENTIALS)
        r[col["next_relative"]] = float(nxt in RELATIVES)
        r[col["next_place_after"]] = float(nxt in PLACE_AFTER)
        r[col["next_initial"]] = float(len(nxt) == 1)
        r[col["prev_namey"]] = _namey(lex, word_at(wi - 1)) if wi >= 1 else 0.0
        r[col["next_namey"]] = _namey(lex, word_at(wi + 1)) if wi + 1 < len(words) else 0.0
        r[col["prev_common"]] = float(prv in lex.common_words)
        r[col["next_common"]] = float(nxt in lex.common_words)
        r[col["prev_is_word"]] = float(ti > 0 and tokens[ti - 1].is_word)
        r[col["next_is_word"]] = float(ti + 1 < len(tokens) and tokens[ti + 1].is_word)
        r[col["relative_near"]] = float(any(word_at(wi + d) in RELATIVES for d in (-4, -3, -2, -1, 1, 2, 3)))
        line_end = line_starts[line + 1] if line + 1 < n_lines else len(text)
        line_words = re.findall(rf"[{_LETTERS}]+", text[line_starts[line] : line_end].lower())
        r[col["credential_on_line"]] = float(any(w in CREDENTIALS for w in line_words[-2:]))
        r[col["short_line"]] = float(len(line_words) <= 5)
        r[col["last_lines"]] = float(line in last_lines)
        r[col["followed_by_comma"]] = float(ti + 1 < len(tokens) and tokens[ti + 1].text == ",")
        r[col["in_parentheses"]] = float(prev_tok == "(")
        known = k in lex.common_words or k in lex.first_names or k in lex.surnames or k in lex.places
        r[col["unknown"]] = float(not known and k not in lex.name_denylist)
        r[col["self_place_after"]] = float(k in PLACE_AFTER)
        r[col["self_institution"]] = float(k in INSTITUTION_WORDS)
        r[col["next_institution"]] = float(nxt in INSTITUTION_WORDS)
        r[col["prev_institution"]] = float(prv in INSTITUTION_WORDS)
        r[col["next2_place_after"]] = float(word_at(wi + 2) in PLACE_AFTER)
        r[col["next_in_place"]] = float(nxt in lex.places)
        r[col["prev_in_place"]] = float(prv in lex.places)
        r[col["next_after_name"]] = float(nxt in AFTER_NAME)
        r[col["next2_after_name"]] = float(word_at(wi + 2) in AFTER_NAME)
        r[col["prev_and_namey"]] = float(prv in ("and", "&") and _namey(lex, word_at(wi - 2)) > 0)
        r[col["prev_title_strict"]] = float(prv in ("dr", "drs", "dr's", "doctor", "mr", "mrs", "ms", "miss"))
        r[col["lives_near"]] = float(any(word_at(wi - d) in _RESIDENCE for d in range(1, 6)))
    return rows


#: words before a town (``lives with son and family in Rockville``)
_RESIDENCE = frozenset(
    ["lives", "living", "lived", "resides", "resident", "moved", "visiting", "vacationing"]
)
