"""Score ConText attributes against sentences annotated in the ConText evaluation format.

The format (Chapman, Harkema et al., J Biomed Inform 2009; the NegEx/ConText project) is a
tab-separated file without a header: ``id``, (empty), the target phrase, the sentence with the
target written in CAPITALS, negation (``Affirmed``/``Negated``), temporality
(``Recent``/``Historical``/``Not particular`` -- the last is *hypothetical*) and experiencer
(``Patient``/``Family member``/``Other``).

Each target is located in its sentence (its capitalised form first, then any case and spacing) and
given to :func:`toolkit.features.mentions.annotate` as a span: exactly the annotated target is
assessed.  A target that is not in its sentence (a handful of rows cut mid-phrase) is counted as
*absent* and not scored.  Separately, each target is looked up as a one-term lexicon: a target in
its sentence that the extractor does not find (a finding taken for a header, say) is *not found*.

Cross-validation (:func:`cross_validate`): rows are dealt to ``k`` folds by position (row ``i`` in
fold ``i % k``); what is tuned -- each category's scope cap in words -- is chosen on the other
folds and scored on the fold left out; the counts are pooled over folds.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import SpecError
from toolkit.features.context import ContextRules
from toolkit.features.lexicon import Lexicon
from toolkit.features.mentions import Mention, Target, annotate, extract

#: Scored attributes: a name and how to read it from a gold row and from a mention.
SCORED = ("negated", "historical", "hypothetical", "family", "other")
_NEGATION = {"affirmed": False, "negated": True}
_TEMPORALITY = {"recent": "recent", "historical": "historical", "not particular": "hypothetical"}
_EXPERIENCER = {"patient": "patient", "family member": "family", "other": "other"}
#: Scope caps tried in cross-validation (None: to the sentence boundary).
CAP_GRID: dict[str, tuple[int | None, ...]] = {
    "negated": (None, 4, 6, 8, 12),
    "historical": (None, 6, 10, 15),
    "hypothetical": (None, 10, 20),
}


@dataclass(frozen=True)
class Example:
    """One annotated row; ``start``/``end`` locate the target in ``sentence`` (None: absent)."""

    id: str
    sentence: str
    target: str
    start: int | None
    end: int | None
    gold: dict[str, bool]


@dataclass(frozen=True)
class AttributeScore:
    attribute: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")


@dataclass(frozen=True)
class ContextScores:
    """Scores per attribute, how many rows were scored, absent, and present but not found."""

    rows: int
    scored: int
    absent: int
    not_found: int
    attributes: tuple[AttributeScore, ...]

    def by_name(self) -> dict[str, AttributeScore]:
        return {a.attribute: a for a in self.attributes}

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "absent": self.absent,
            "not_found": self.not_found,
            "not_found_rate": self.not_found / self.scored if self.scored else float("nan"),
            "attributes": [
                {"attribute": a.attribute, "tp": a.tp, "fp": a.fp, "fn": a.fn, "tn": a.tn,
                 "precision": a.precision, "recall": a.recall, "f1": a.f1}
                for a in self.attributes
            ],
        }  # fmt: skip


def _locate(target: str, sentence: str) -> tuple[int, int] | None:
    i = sentence.find(target.upper())
    if i >= 0 and target.strip():
        return i, i + len(target)
    words = target.split()
    if not words:
        return None
    m = re.search(r"\s+".join(re.escape(w) for w in words), sentence, re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def read_context_annotations(path: Path) -> list[Example]:
    """Rows of a ConText-format file; errors name the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: annotation file not found")
    out: list[Example] = []
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 7:
                raise SpecError(f"{path}: line {n}: expected 7 tab-separated fields; got {len(row)}")
            rid, _, target, sentence, neg, temp, exp = row
            fields = (
                ("negation", neg, _NEGATION),
                ("temporality", temp, _TEMPORALITY),
                ("experiencer", exp, _EXPERIENCER),
            )
            vals = {}
            for name, value, allowed in fields:
                key = value.strip().lower()
                if key not in allowed:
                    raise SpecError(
                        f"{path}: line {n}: {name}: expected one of {sorted(allowed)} (any case); got {value.strip()!r}"
                    )
                vals[name] = allowed[key]
            gold = {
                "negated": bool(vals["negation"]),
                "historical": vals["temporality"] == "historical",
                "hypothetical": vals["temporality"] == "hypothetical",
                "family": vals["experiencer"] == "family",
                "other": vals["experiencer"] == "other",
            }
            span = _locate(target, sentence)
            start, end = span if span else (None, None)
            out.append(Example(rid, sentence, target, start, end, gold))
    if not out:
        raise SpecError(f"{path}: no annotated rows")
    return out


def _predicted(m: Mention) -> dict[str, bool]:
    return {
        "negated": m.negated,
        "historical": m.historical,
        "hypothetical": m.hypothetical,
        "family": m.experiencer == "family",
        "other": m.experiencer == "other",
    }


def predict(examples: Sequence[Example], rules: ContextRules) -> list[dict[str, bool] | None]:
    """Given-target predictions per row (None where the target is absent from its sentence)."""
    out: list[dict[str, bool] | None] = []
    for ex in examples:
        if ex.start is None or ex.end is None:
            out.append(None)
            continue
        (m,) = annotate(ex.sentence, targets=[Target(ex.start, ex.end)], rules=rules)
        out.append(_predicted(m))
    return out


def found_by_lexicon(ex: Example, rules: ContextRules) -> bool:
    """Whether the extractor, with the target phrase as its only lexicon term, finds the target."""
    assert ex.start is not None and ex.end is not None
    lex = Lexicon({"target": (" ".join(ex.target.split()),)})
    return any(m.start < ex.end and ex.start < m.end for m in extract(ex.sentence, lex, rules=rules))


def score(
    examples: Sequence[Example], predictions: Sequence[dict[str, bool] | None], *, not_found: int = 0
) -> ContextScores:
    attrs = []
    for a in SCORED:
        tp = fp = fn = tn = 0
        for ex, p in zip(examples, predictions, strict=True):
            if p is None:
                continue
            g, q = ex.gold[a], p[a]
            tp += g and q
            fp += q and not g
            fn += g and not q
            tn += not g and not q
        attrs.append(AttributeScore(a, tp, fp, fn, tn))
    scored = sum(p is not None for p in predictions)
    return ContextScores(len(examples), scored, len(examples) - scored, not_found, tuple(attrs))


def evaluate(examples: Sequence[Example], rules: ContextRules | None = None) -> ContextScores:
    """Scores of ``rules`` (default: the shipped ones) on ``examples``, and targets not found."""
    rules = rules or ContextRules.default()
    missing = sum(not found_by_lexicon(ex, rules) for ex in examples if ex.start is not None)
    return score(examples, predict(examples, rules), not_found=missing)


def tune(examples: Sequence[Example], rules: ContextRules) -> ContextRules:
    """The scope caps (:data:`CAP_GRID`) that maximise each category's F1 on ``examples``."""
    best: dict[str, int | None] = {}
    for category, grid in CAP_GRID.items():
        f1s = []
        for cap in grid:
            s = score(examples, predict(examples, rules.with_max_words(**{category: cap})))
            f1s.append((s.by_name()[category].f1, cap is None, cap))
        best[category] = max(f1s, key=lambda x: (x[0], x[1]))[2]
    return rules.with_max_words(**best)


def cross_validate(
    examples: Sequence[Example], rules: ContextRules | None = None, *, k: int = 5
) -> tuple[ContextScores, list[dict[str, int | None]]]:
    """k-fold scores pooled over folds, and the caps chosen on each fold's training rows."""
    if k < 2:
        raise SpecError(f"cross_validate: k must be at least 2; got {k}")
    rules = rules or ContextRules.default()
    predictions: list[dict[str, bool] | None] = [None] * len(examples)
    chosen = []
    for fold in range(k):
        train = [ex for i, ex in enumerate(examples) if i % k != fold]
        held = [i for i in range(len(examples)) if i % k == fold]
        fitted = tune(train, rules)
        chosen.append({c: fitted.max_words.get(c) for c in CAP_GRID})
        for i, p in zip(held, predict([examples[i] for i in held], fitted), strict=True):
            predictions[i] = p
    missing = sum(not found_by_lexicon(ex, rules) for ex in examples if ex.start is not None)
    return score(examples, predictions, not_found=missing), chosen
