"""ConText: whether a concept mention is negated, historical, hypothetical, uncertain, or about
someone other than the patient -- each an independent attribute of the mention.

ConText (Harkema et al., J Biomed Inform 2009) decides from *trigger* phrases and their *scope*:

* a trigger has a category (negated, historical, hypothetical, uncertain, family, other) and a
  direction: ``forward`` triggers ("no", "history of", "if") cover the text after them,
  ``backward`` ones ("was ruled out", "in the past") the text before them, ``both`` (relatives);
* a scope runs to the sentence boundary, and stops early at a *termination* term: general ones
  ("but", "however", ";") and the category's own ("presents" ends a history scope: "history of
  diabetes who presents with chest pain");
* *pseudo-triggers* ("history of present illness", "no change") contain a trigger but are not one;
* a section can set a default ("PAST MEDICAL HISTORY" -> historical): it acts as a trigger at the
  start of each of the section's sentences, so the category's termination terms end it too
  ("PMH: ... now presents with chest pain" -> chest pain is not historical);
* a mention that is its sentence's only content (a list item: "HYPERTENSION.", "2) CAD") outside
  any known section is historical when it names a chronic condition (the category's ``alone``
  phrases): such an item was cut from a problem list or past history whose header is not there.

Every attribute is decided on its own: "No history of MI" is negated *and* historical.  Each
attribute keeps the cue that set it (trigger offsets and scope, or the section), so a reader can see
why.  The trigger lists are data (``context_rules.yaml``); :class:`ContextRules` compiles them.

>>> rules = ContextRules.default()
>>> c = assess("No history of atrial fibrillation.", (14, 33), rules)
>>> (c.negated, c.historical, c.hypothetical, c.experiencer)
(True, True, False, 'patient')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from toolkit.errors import SpecError

#: The attributes of a mention, in the order their names are joined in feature names.
ATTRIBUTES = ("negated", "uncertain", "hypothetical", "historical", "experiencer")
CATEGORIES = ("negated", "historical", "hypothetical", "uncertain", "family", "other")
Experiencer = Literal["patient", "family", "other"]
_DIRECTIONS = ("forward", "backward", "both")
_KINDS = (*_DIRECTIONS, "self", "alone", "pseudo", "terminate")
# what may stand beside a list item's text: its number ("2)", "04)", "1.") and punctuation
_LIST_MARK = re.compile(r"\b\d{1,2}[.)]|[\W_]")


@dataclass(frozen=True)
class Cue:
    """What set an attribute: a trigger (``source="trigger"``, its phrase and offsets), a section
    default (``source="section"``, the section name as phrase) or a list item's own words
    (``source="list_item"``: an ``alone`` phrase).  Offsets are in the text passed in."""

    category: str
    source: Literal["trigger", "section", "list_item"]
    phrase: str
    start: int
    end: int
    scope_start: int
    scope_end: int


@dataclass(frozen=True)
class Context:
    """The attributes of one mention and the cues that set them."""

    negated: bool = False
    historical: bool = False
    hypothetical: bool = False
    uncertain: bool = False
    experiencer: Experiencer = "patient"
    cues: tuple[Cue, ...] = ()

    def label(self, attributes: Sequence[str] = ATTRIBUTES) -> str:
        """The attributes that are set, among ``attributes``, joined by ``_`` ("negated_historical",
        "family"); ``present`` when none is (affirmed, current, about the patient)."""
        parts = [a for a in ATTRIBUTES if a != "experiencer" and a in attributes and getattr(self, a)]
        if "experiencer" in attributes and self.experiencer != "patient":
            parts.append(self.experiencer)
        return "_".join(parts) or "present"


@dataclass(frozen=True)
class _Phrases:
    """One category x kind: literal phrases as one alternation, plus regular expressions."""

    literal: re.Pattern[str] | None
    regexes: tuple[tuple[str, re.Pattern[str]], ...]

    def finditer(self, text: str) -> list[tuple[int, int, str]]:
        out: list[tuple[int, int, str]] = []
        if self.literal is not None:
            out += [(m.start(), m.end(), _norm(m.group(0))) for m in self.literal.finditer(text)]
        for name, rx in self.regexes:
            out += [(m.start(), m.end(), name) for m in rx.finditer(text) if m.end() > m.start()]
        return out


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def _compile(phrases: Sequence[str], where: str) -> _Phrases:
    literal = sorted({_norm(p) for p in phrases if not p.startswith("re:")}, key=len, reverse=True)
    regexes = []
    for p in phrases:
        if p.startswith("re:"):
            try:
                regexes.append((p, re.compile(p[3:], re.IGNORECASE)))
            except re.error as exc:
                raise SpecError(f"{where}: {p!r} is not a valid regular expression ({exc})") from None
    alt = "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in literal)
    # not inside a word: "year-old" holds no "old", "s/p" no "p"
    rx = re.compile(rf"(?<![\w/'-])(?:{alt})(?![\w/])", re.IGNORECASE) if alt else None
    return _Phrases(rx, tuple(regexes))


@dataclass(frozen=True)
class ContextRules:
    """Compiled trigger lists: ``phrases[category][kind]`` (kind: forward, backward, both, self --
    phrases that set the category when they are part of the mention itself, alone -- the same for a
    mention alone in its sentence outside any known section, pseudo, terminate) and
    the general termination terms.  ``max_words`` caps a category's scope in words
    (None: to the sentence boundary)."""

    phrases: Mapping[str, Mapping[str, _Phrases]]
    terminate: _Phrases
    source: Mapping[str, Mapping[str, tuple[str, ...]]]
    max_words: Mapping[str, int | None] = field(default_factory=dict)

    @staticmethod
    def default() -> ContextRules:
        """The shipped lists (``toolkit/features/context_rules.yaml``)."""
        return _default_rules()

    @staticmethod
    def from_mapping(data: Mapping[str, Any], *, where: str = "context rules") -> ContextRules:
        """Rules from ``{category: {kind: [phrase, ...]}, terminate: [...], max_words: {...}}``."""
        unknown = set(data) - {*CATEGORIES, "terminate", "max_words"}
        if unknown:
            raise SpecError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected {[*CATEGORIES, 'terminate']}"
            )
        phrases: dict[str, dict[str, _Phrases]] = {}
        source: dict[str, dict[str, tuple[str, ...]]] = {}
        for cat in CATEGORIES:
            kinds = data.get(cat) or {}
            bad = set(kinds) - set(_KINDS)
            if bad:
                raise SpecError(f"{where}: {cat}: unknown key(s) {sorted(bad)}; expected {list(_KINDS)}")
            source[cat] = {}
            for kind in _KINDS:
                items = kinds.get(kind) or []
                if not isinstance(items, list) or not all(isinstance(p, str) and p.strip() for p in items):
                    raise SpecError(f"{where}: {cat}.{kind}: expected a list of phrases")
                source[cat][kind] = tuple(items)
            phrases[cat] = {k: _compile(v, f"{where}: {cat}.{k}") for k, v in source[cat].items()}
        general = data.get("terminate") or []
        source["terminate"] = {"terminate": tuple(general)}
        max_words = {
            str(k): (None if v is None else int(v)) for k, v in (data.get("max_words") or {}).items()
        }
        return ContextRules(phrases, _compile(general, f"{where}: terminate"), source, max_words)

    def with_max_words(self, **caps: int | None) -> ContextRules:
        return replace(self, max_words={**self.max_words, **caps})

    def trigger_phrases(self) -> set[str]:
        """Every literal trigger phrase (all categories and directions), normalised."""
        return {_norm(p) for cat in CATEGORIES for d in _DIRECTIONS for p in self.source[cat][d]}


@cache
def _default_rules() -> ContextRules:
    ref = resources.files("toolkit.features") / "context_rules.yaml"
    data = yaml.safe_load(ref.read_text(encoding="utf-8"))
    return ContextRules.from_mapping(data, where="context_rules.yaml")


# --- the algorithm ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Trigger:
    category: str
    direction: str
    phrase: str
    start: int
    end: int
    scope_from: int  # where a forward scope starts (after a pseudo-trigger: the next comma)


def _resolve(found: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """Longest match first where matches overlap; one span found forward and backward is 'both'."""
    by_span: dict[tuple[int, int], tuple[str, set[str]]] = {}
    for s, e, phrase, d in found:
        by_span.setdefault((s, e), (phrase, set()))[1].add(d)
    kept: list[tuple[int, int, str, str]] = []
    for (s, e), (phrase, dirs) in sorted(by_span.items(), key=lambda kv: (-(kv[0][1] - kv[0][0]), kv[0][0])):
        if any(s < ke and ks < e for ks, ke, _, _ in kept):
            continue
        direction = "both" if "both" in dirs or {"forward", "backward"} <= dirs else dirs.pop()
        kept.append((s, e, phrase, direction))
    return kept


def _triggers(
    sentence: str, rules: ContextRules, category: str, blocked: Sequence[tuple[int, int]]
) -> list[_Trigger]:
    table = rules.phrases[category]
    found = [(s, e, p, d) for d in _DIRECTIONS for s, e, p in table[d].finditer(sentence)]
    pseudo = [(s, e) for s, e, _ in table["pseudo"].finditer(sentence)]
    out: list[_Trigger] = []
    for s, e, phrase, direction in _resolve(found):
        if any(s < be and bs < e for bs, be in blocked):
            continue
        start_scope = e
        covering = [pe for ps, pe in pseudo if s < pe and ps < e]
        if covering:
            if category != "negated" or direction == "backward":
                continue
            # "no change in vision, diplopia or hearing loss": the pseudo-trigger covers the phrase
            # right after it; a list that follows it is still negated.
            comma = sentence.find(",", max(covering))
            if comma < 0:
                continue
            start_scope = comma + 1
        out.append(_Trigger(category, direction, phrase, s, e, start_scope))
    return out


def _terminations(sentence: str, rules: ContextRules, category: str) -> list[tuple[int, int]]:
    own = rules.phrases[category]["terminate"].finditer(sentence)
    return sorted((s, e) for s, e, _ in [*own, *rules.terminate.finditer(sentence)])


_WORD = re.compile(r"\w+")


def _cap(sentence: str, start: int, end: int, limit: int | None, *, forward: bool) -> tuple[int, int]:
    if limit is None:
        return start, end
    words = list(_WORD.finditer(sentence, start, end))
    if len(words) <= limit:
        return start, end
    return (start, words[limit - 1].end()) if forward else (words[-limit].start(), end)


def _scopes(
    t: _Trigger, sentence: str, stops: list[tuple[int, int]], limit: int | None
) -> list[tuple[int, int]]:
    out = []
    if t.direction in ("forward", "both"):
        end = min([s for s, _ in stops if s >= t.scope_from], default=len(sentence))
        out.append(_cap(sentence, t.scope_from, end, limit, forward=True))
    if t.direction in ("backward", "both"):
        start = max([e for _, e in stops if e <= t.start], default=0)
        out.append(_cap(sentence, start, t.start, limit, forward=False))
    return out


def _alone(sentence: str, span: tuple[int, int]) -> bool:
    """Whether the mention is all its sentence says (besides a list number and punctuation)."""
    s, e = span
    return not _LIST_MARK.sub("", sentence[:s] + " " + sentence[e:]).strip()


def _own_cues(
    sentence: str, span: tuple[int, int], rules: ContextRules, category: str, *, sectioned: bool
) -> list[Cue]:
    """Cues from the mention's own words: ``self`` phrases, and ``alone`` phrases (not inside one of
    the category's pseudo phrases: "pulmonary hypertension" is not "hypertension") when the mention
    is a list item outside any known section."""
    s, e = span
    table = rules.phrases[category]
    out = [
        Cue(category, "trigger", p, s + a, s + b, s, e) for a, b, p in table["self"].finditer(sentence[s:e])
    ]
    if sectioned or not _alone(sentence, span):
        return out
    pseudo = [(a, b) for a, b, _ in table["pseudo"].finditer(sentence[s:e])]
    for a, b, p in table["alone"].finditer(sentence[s:e]):
        if not any(a < pe and ps < b for ps, pe in pseudo):
            out.append(Cue(category, "list_item", p, s + a, s + b, s, e))
    return out


def sentence_cues(
    sentence: str,
    spans: Sequence[tuple[int, int]],
    rules: ContextRules,
    *,
    section_defaults: Sequence[tuple[str, str]] = (),
    sectioned: bool = True,
) -> list[list[Cue]]:
    """The cues covering each mention ``span`` of one sentence (offsets relative to the sentence).

    ``section_defaults``: ``(category, section name)`` pairs, each a trigger at the sentence start.
    ``sectioned``: whether the sentence lies in a known section (``False``: before any header, where
    a list item's ``alone`` phrases apply).  A trigger inside another mention is ignored; a negation
    that starts a mention's own span ("NO KNOWN ALLERGIES" given as the target) covers that mention.
    """
    out: list[list[Cue]] = [[] for _ in spans]
    for category in CATEGORIES:
        triggers = _triggers(sentence, rules, category, [])
        defaults = [d for d in section_defaults if d[0] == category]
        for i, span in enumerate(spans):
            out[i] += _own_cues(sentence, span, rules, category, sectioned=sectioned)
        if not triggers and not defaults:
            continue
        stops = _terminations(sentence, rules, category)
        limit = rules.max_words.get(category)
        for i, (s, e) in enumerate(spans):
            others = [sp for j, sp in enumerate(spans) if j != i]
            for t in triggers:
                if any(t.start < oe and os < t.end for os, oe in others):
                    continue
                inside = t.start < e and s < t.end
                if inside and not (t.start == s and category == "negated" and t.direction != "backward"):
                    continue
                scopes = [(s, e)] if inside else _scopes(t, sentence, stops, limit)
                for a, b in scopes:
                    if s < b and a < e:
                        out[i].append(Cue(category, "trigger", t.phrase, t.start, t.end, a, b))
                        break
            for _, section in defaults:
                head = _Trigger(category, "forward", section, 0, 0, 0)
                (a, b), *_ = _scopes(head, sentence, stops, None)
                if s < b and a < e:
                    out[i].append(Cue(category, "section", section, 0, 0, a, b))
    return out


def context_of(cues: Sequence[Cue]) -> Context:
    """The attributes the cues set (relatives before other people where both occur)."""
    cats = {c.category for c in cues}
    experiencer: Experiencer = "family" if "family" in cats else "other" if "other" in cats else "patient"
    return Context(
        negated="negated" in cats,
        historical="historical" in cats,
        hypothetical="hypothetical" in cats,
        uncertain="uncertain" in cats,
        experiencer=experiencer,
        cues=tuple(cues),
    )


def assess(
    sentence: str,
    span: tuple[int, int],
    rules: ContextRules | None = None,
    *,
    section_defaults: Sequence[tuple[str, str]] = (),
    sectioned: bool = True,
) -> Context:
    """The context of one mention in one sentence (offsets relative to the sentence)."""
    (cues,) = sentence_cues(
        sentence,
        [span],
        rules or ContextRules.default(),
        section_defaults=section_defaults,
        sectioned=sectioned,
    )
    return context_of(cues)
