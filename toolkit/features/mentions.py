"""Concept mentions with their context: found with a lexicon, or given as spans by another tool.

Both modes share one pipeline per note: sections (:mod:`toolkit.features.sections`), sentences,
then ConText (:mod:`toolkit.features.context`) on each sentence's mentions.  In *given-target*
mode the spans come from elsewhere (another NER, an LLM, a terminology server) and Regent only
assigns their context; a span is never dropped, even inside a header or across a sentence break.

>>> from toolkit.features.lexicon import load_lexicon
>>> lex = load_lexicon("cardiology")
>>> [(m.concept, m.label()) for m in extract("Denies orthopnea. Mother had an MI.", lex)]
[('orthopnea', 'negated'), ('myocardial_infarction', 'family')]
>>> (m,) = annotate("No history of AF.", targets=[Target(14, 16)])
>>> (m.negated, m.historical, m.section)
(True, True, 'header')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from toolkit.errors import SpecError
from toolkit.features import sections as sec
from toolkit.features.context import ATTRIBUTES, Context, ContextRules, Experiencer, context_of, sentence_cues
from toolkit.features.lexicon import Lexicon


@dataclass(frozen=True)
class Target:
    """A span to assess (character offsets, end exclusive), optionally with its concept."""

    start: int
    end: int
    concept: str | None = None


@dataclass(frozen=True)
class Mention:
    """A concept mention, its section and its context (the attributes and the cues that set them)."""

    concept: str | None
    start: int
    end: int
    section: str
    context: Context

    @property
    def negated(self) -> bool:
        return self.context.negated

    @property
    def historical(self) -> bool:
        return self.context.historical

    @property
    def hypothetical(self) -> bool:
        return self.context.hypothetical

    @property
    def uncertain(self) -> bool:
        return self.context.uncertain

    @property
    def experiencer(self) -> Experiencer:
        return self.context.experiencer

    def label(self, attributes: Sequence[str] = ATTRIBUTES) -> str:
        return self.context.label(attributes)


def _sentence_groups(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, int, int, list[int]]]:
    """``(section, sentence start, sentence end, indices of the spans in it)``; a span crossing a
    sentence (or section) break widens its sentence to cover it."""
    parts = sec.sections(text)
    pieces = [(name, a, b) for name, s0, s1 in parts for a, b in sec.sentences(text, s0, s1)]
    groups: list[tuple[str, int, int, list[int]]] = []
    for i in sorted(range(len(spans)), key=lambda k: spans[k]):
        s, e = spans[i]
        hit = [p for p in pieces if p[1] < max(e, s + 1) and s < p[2]]
        if not hit:  # inside a header or blank text: the span is its own sentence
            name = next((n for n, s0, _ in parts if s0 >= e), "header")
            hit = [(name, s, e)]
        name, a, b = hit[0][0], min(p[1] for p in hit), max(max(p[2] for p in hit), e)
        a = min(a, s)
        if groups and groups[-1][1] < b and a < groups[-1][2]:  # overlaps the previous group: merge
            g = groups.pop()
            groups.append((g[0], min(g[1], a), max(g[2], b), [*g[3], i]))
        else:
            groups.append((name, a, b, [i]))
    return groups


def _assess(text: str, targets: Sequence[Target], rules: ContextRules) -> list[Mention]:
    spans = [(t.start, t.end) for t in targets]
    out: list[Mention | None] = [None] * len(targets)
    for section, a, b, members in _sentence_groups(text, spans):
        sentence = text[a:b]
        defaults = [(cat, section) for cat in sec.SECTION_DEFAULTS.get(section, ())]
        local = [(spans[i][0] - a, spans[i][1] - a) for i in members]
        cues = sentence_cues(sentence, local, rules, section_defaults=defaults, sectioned=section != "header")
        for i, found in zip(members, cues, strict=True):
            shifted = tuple(
                replace(
                    c,
                    start=c.start + a,
                    end=c.end + a,
                    scope_start=c.scope_start + a,
                    scope_end=c.scope_end + a,
                )
                for c in found
            )
            t = targets[i]
            out[i] = Mention(t.concept, t.start, t.end, section, context_of(shifted))
    return [m for m in out if m is not None]


def annotate(
    text: str,
    *,
    targets: Sequence[Target] | None = None,
    lexicon: Lexicon | None = None,
    rules: ContextRules | None = None,
) -> list[Mention]:
    """The context of each given target span, or of each lexicon mention found in ``text``.

    Exactly one of ``targets`` and ``lexicon``.  Targets are checked against the text (``0 <= start
    < end <= len(text)``); the error names the target's index, never the text.
    """
    if (targets is None) == (lexicon is None):
        raise SpecError("annotate: pass exactly one of targets (spans) and lexicon (find the mentions)")
    rules = rules or ContextRules.default()
    if lexicon is not None:
        return extract(text, lexicon, rules=rules)
    assert targets is not None
    for k, t in enumerate(targets):
        if not (0 <= t.start < t.end <= len(text)):
            raise SpecError(
                f"targets[{k}]: expected 0 <= start < end <= {len(text)} (the text's length); "
                f"got start={t.start}, end={t.end}"
            )
    return _assess(text, targets, rules)


def extract(text: str, lexicon: Lexicon, *, rules: ContextRules | None = None) -> list[Mention]:
    """Every lexicon mention in ``text`` with its section and context."""
    found = [Target(s, e, c) for s, e, c in lexicon.find(text)]
    return _assess(text, found, rules or ContextRules.default()) if found else []
